"""JSON from strangers, parsed with bounds: size, nesting depth, number of items.

Why: ``json.loads`` of ``[[[[…]]]]`` 100,000 deep raises ``RecursionError`` — a 500 with a traceback in an
HTTP handler, or a crashed connector — and a list of 20,000 items is 20,000 events one request can force
on the hub. Every edge that parses a sender's JSON (``http_ingest``, the counter API) goes through
:func:`loads_bounded`, which refuses such bodies with a :class:`JsonRefused` naming the limit, never the
content.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["JsonRefused", "loads_bounded", "MAX_DEPTH"]

MAX_DEPTH = 32
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_OPEN, _CLOSE = frozenset(b"[{"), frozenset(b"]}")


class JsonRefused(ValueError):
    """A body that is not JSON, or exceeds a bound. ``limit`` names the bound (``not_json``, ``depth`` …)."""

    def __init__(self, limit: str, problem: str) -> None:
        self.limit = limit
        self.problem = problem
        super().__init__(problem)


def _depth(raw: bytes, max_depth: int) -> None:
    depth = 0
    for ch in _STRINGS.sub(b'""', raw):
        if ch in _OPEN:
            depth += 1
            if depth > max_depth:
                raise JsonRefused("depth", f"JSON nested deeper than {max_depth} levels")
        elif ch in _CLOSE:
            depth -= 1


def loads_bounded(raw: bytes | str, *, max_bytes: int = 1_048_576, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` within bounds; raises :class:`JsonRefused` (a ``ValueError``) instead of anything else."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)
    if len(data) > max_bytes:
        raise JsonRefused("size", f"body of {len(data)} bytes exceeds {max_bytes}")
    _depth(data, max_depth)
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        where = f" at position {exc.pos}" if isinstance(exc, json.JSONDecodeError) else ""
        kind = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        raise JsonRefused("not_json", f"not JSON: {kind}{where}") from None
