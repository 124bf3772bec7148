"""Fixtures of the hostile tests: department edges running for real against the session broker."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from connectors.sdk import testkit
from connectors.sdk.runner import SourceRunner
from connectors.sources.http_ingest import HttpIngestSource
from tests.connectors.conftest import _postgresql_proc, pg_ctl_present, pg_url, postgresql, postgresql_proc  # noqa: F401

EXAMPLES = Path(__file__).parents[2] / "connectors" / "examples"


@contextmanager
def ingest(bootstrap: str, example: str, **overrides: Any) -> Iterator[HttpIngestSource]:
    """An http_ingest example on a free port, run by a real runner in a thread."""
    src = testkit.from_yaml(EXAMPLES / example, name=testkit.unique_name("hostile"), port=0, **overrides)
    stop = threading.Event()
    runner = SourceRunner(src, bootstrap, metrics=testkit.metrics(), stop=stop)
    t = threading.Thread(target=runner.run, daemon=True)
    t.start()
    for _ in range(100):
        if getattr(src, "port", None):
            break
        stop.wait(0.1)
    try:
        yield src
    finally:
        stop.set()
        t.join(20)
        assert not t.is_alive()


def post(url: str, body: bytes | Any, token: str | None, *, timeout: float = 30) -> tuple[int, str]:
    """POST and return (status, body text) whatever the status."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST", headers={"content-type": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
