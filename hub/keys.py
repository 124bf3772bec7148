"""Which secrets the hub accepts: development keys only on the embedded broker, and a minimum strength.

Why: the repository publishes development values so ``make run`` works on a fresh machine — the
pseudonym key, the edge key, ``dev-token-*`` bearer tokens, a webhook secret. Anyone holding the
published pseudonym key can turn person tokens back into ID numbers by enumeration (~10^11 guesses);
a published bearer token lets anyone post as a hospital. So a development or weak secret is

* **refused** (:class:`WeakSecret`) whenever the hub is not on its embedded development broker
  (``HUB_BROKER=kafka://…``: a real deployment), and
* **warned about loudly** on the embedded broker, where it is the point of the demo.

A secret is weak when it is shorter than :data:`MIN_SECRET_CHARS` characters (bearer tokens, the
pseudonym key) or, for a Standard Webhooks secret, decodes to fewer than 24 bytes. A value that came
from a ``${VAR:-default}`` fallback in a connector file is a development value by definition: the
environment did not provide the secret.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Iterable

from hub.config import DEV_EDGE_KEY, DEV_PSEUDONYM_KEY, Settings
from hub.errors import HubError

__all__ = ["MIN_SECRET_CHARS", "WeakSecret", "Finding", "judge", "secret_problems", "settings_findings",
           "webhook_secret_problems"]

MIN_SECRET_CHARS = 32
MIN_WEBHOOK_SECRET_BYTES = 24
log = logging.getLogger("hub.keys")


class WeakSecret(HubError):
    """A development or weak secret outside the embedded development broker. The message names it."""


Finding = tuple[str, str]
"""(name of the secret, what is wrong with it) — never the secret itself."""


def secret_problems(value: str | bytes, *, dev: bool, min_chars: int = MIN_SECRET_CHARS) -> list[str]:
    """What is wrong with one secret (empty list: nothing)."""
    problems = []
    if dev:
        problems.append("is a development default published in the repository")
    if len(value) < min_chars:
        problems.append(f"is {len(value)} characters long (at least {min_chars})")
    return problems


def webhook_secret_problems(secret: str, *, dev: bool) -> list[str]:
    """A Standard Webhooks secret ``whsec_<base64>``: development default, or fewer than 24 random bytes."""
    problems = ["is a development default published in the repository"] if dev else []
    try:
        raw = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        return [*problems, "is not whsec_<base64>"]
    if len(raw) < MIN_WEBHOOK_SECRET_BYTES:
        problems.append(f"decodes to {len(raw)} bytes (at least {MIN_WEBHOOK_SECRET_BYTES})")
    return problems


def settings_findings(settings: Settings, *, edge: bool = True) -> list[Finding]:
    """Problems of the keys in hub settings that an edge process uses."""
    found = [("HUB_PSEUDONYM_KEY", p) for p in secret_problems(
        settings.pseudonym_key, dev=settings.pseudonym_key == DEV_PSEUDONYM_KEY)]
    if edge and settings.edge_key == DEV_EDGE_KEY:
        found.append(("HUB_EDGE_KEY", "is a development default published in the repository"))
    return found


def judge(findings: Iterable[Finding], *, embedded: bool, where: str,
          logger: logging.Logger | None = None) -> list[str]:
    """Refuse (outside the embedded broker) or warn loudly (on it) about ``findings``; the warnings given.

    ``where`` names the process (``hub connector run x.yaml``, ``counter API``) in the message.
    """
    lines = [f"{name} {problem}" for name, problem in findings]
    if not lines:
        return []
    if not embedded:
        raise WeakSecret(f"{where}: refusing development or weak secrets outside the embedded broker: "
                         + "; ".join(lines) + ". Set each from the environment to a random secret of at least "
                         f"{MIN_SECRET_CHARS} characters (e.g. `openssl rand -base64 32`).")
    warnings = [f"!!! {where}: {line} — acceptable only on the embedded development broker, never with real "
                "ID numbers !!!" for line in lines]
    for w in warnings:
        (logger or log).warning(w)
    return warnings
