"""Readable names for the scenario persons, and the person tokens the replay files carry for them.

Why: a ``person_token`` on a topic has one shape only (``p_`` + 32 hex, hub.identity), so the replay
scenarios cannot use ``mengzi-burden`` as a token. Tests and docstrings keep the names; ``tok`` gives the
token the scenario files hold for each (a fixed hash, so the files stay reproducible).
"""

from __future__ import annotations

import hashlib


def tok(name: str) -> str:
    """The person token the replay scenarios use for the person called ``name``."""
    return "p_" + hashlib.sha256(f"e2e-scenario:{name}".encode()).hexdigest()[:32]
