"""What-if settings of the worker's live shell, for benchmarks only.

Why: the counter API's latency runs through the worker (its poll timeout, its idle pause, its fetches, its
transaction per batch), which this branch does not change (hub/processors is the lead's). To say *how much* each
costs, a benchmark starts the worker with this folder on ``PYTHONPATH``; Python imports ``sitecustomize`` at
start-up, and this one applies, when set:

``BENCH_STREAM_OPTIONS=idle_pause=0.005,poll_ms=20``
    fields of :class:`hub.processors.stream.StreamOptions`, set after its own ``__init__``;
``BENCH_PACE_FETCHES=0.005``
    the worker's consumers hold an empty fetch response that long before fetching again
    (:func:`hub.clients.pace_empty_fetches`, what the counter API does against noida-db).

Without the variables it does nothing. Never on the path of a real deployment.
"""

from __future__ import annotations

import os

_OPTIONS = os.environ.get("BENCH_STREAM_OPTIONS", "")
_PACE = float(os.environ.get("BENCH_PACE_FETCHES", "0") or 0)

if _OPTIONS or _PACE:
    from typing import Any

    from hub.processors import stream

    if _OPTIONS:
        _overrides = dict(item.split("=", 1) for item in _OPTIONS.split(",") if item)
        _init = stream.StreamOptions.__init__

        def _patched(self: Any, *args: Any, **kwargs: Any) -> None:
            _init(self, *args, **kwargs)
            for name, text in _overrides.items():
                kind = type(getattr(self, name))
                setattr(self, name, text.lower() in ("1", "true", "yes") if kind is bool else kind(text))

        stream.StreamOptions.__init__ = _patched  # type: ignore[method-assign]

    if _PACE:
        from hub.clients import pace_empty_fetches

        class _PacedConsumer(stream.AIOKafkaConsumer):  # type: ignore[misc,name-defined]
            async def start(self) -> None:
                await super().start()
                pace_empty_fetches(self, _PACE)

        stream.AIOKafkaConsumer = _PacedConsumer  # type: ignore[misc]
