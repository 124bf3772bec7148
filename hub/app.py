"""faust App factory. Nothing happens at import time: tests and the CLI build their own app.

The app owns one raw aiokafka producer (see :mod:`hub.processors.shell` for why outputs and
changelog records bypass faust's per-message send path) and registers the processors.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import faust
from aiokafka import AIOKafkaProducer

from hub.topics import PARTITIONS

log = logging.getLogger(__name__)

BATCH_MAX = 2000
BATCH_WITHIN = 0.2
STATE_BATCH_BYTES = 32 * 1024 * 1024

EMPTY_FETCH_PAUSE_MS = 10.0
"""Default of ``HUB_EMPTY_FETCH_PAUSE_MS`` (see :func:`pause_after_empty_fetches`)."""


def pause_after_empty_fetches(pause_ms: float | None = None) -> float:
    """Make aiokafka consumers in this process wait ``pause_ms`` after a fetch that brought nothing.

    Why: a Kafka broker holds a fetch that finds no data for ``fetch.max.wait.ms`` (faust asks for
    1.5 s). noida-db, the embedded broker, answers at once, and aiokafka's fetcher sends the next
    fetch as soon as the last one returns. A worker busy with a batch has records buffered for its
    busy partitions, so each fetch asks only for the exhausted ones, gets nothing, and repeats:
    hundreds of round trips a second on faust's consumer thread, each paid for in CPU and in the GIL
    the event loop needs. A short pause after an *empty* answer stops that spin; a fetch that brought
    records is followed at once, exactly as before. Nothing is delivered differently: only when the
    next fetch for an idle partition is sent changes, by at most ``pause_ms`` — far less than the 1.5 s
    a real Kafka broker itself waits before answering such a fetch.

    ``pause_ms`` defaults to ``HUB_EMPTY_FETCH_PAUSE_MS`` (10); 0 leaves aiokafka untouched. Idempotent
    (a second call only changes the pause). Returns the pause in effect, in seconds.
    """
    if pause_ms is None:
        pause_ms = float(os.environ.get("HUB_EMPTY_FETCH_PAUSE_MS", EMPTY_FETCH_PAUSE_MS))
    pause = max(pause_ms, 0.0) / 1000.0
    from aiokafka.consumer.fetcher import Fetcher

    current = Fetcher._proc_fetch_request
    original = getattr(current, "__hub_original__", current)
    if pause == 0.0:
        Fetcher._proc_fetch_request = original  # type: ignore[method-assign]
        return 0.0

    async def _proc_fetch_request(self: Any, assignment: Any, node_id: int, request: Any) -> bool:
        has_data = await original(self, assignment, node_id, request)
        task = asyncio.current_task()
        if not has_data and not (task is not None and task.cancelling()):
            await asyncio.sleep(pause)  # the node stays "in flight": no new fetch to it meanwhile
        return bool(has_data)

    _proc_fetch_request.__hub_original__ = original  # type: ignore[attr-defined]
    Fetcher._proc_fetch_request = _proc_fetch_request  # type: ignore[method-assign]
    return pause


@dataclass
class HubContext:
    """What the processors share inside one worker process."""

    bootstrap: str
    producer: AIOKafkaProducer | None = None
    runners: list[Any] = field(default_factory=list)
    _lock: asyncio.Lock | None = None

    async def get_producer(self) -> AIOKafkaProducer:
        """The worker's raw producer, started on first use (agents may run before services)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.bootstrap.split(","),
                    acks="all",
                    enable_idempotence=True,
                    linger_ms=5,
                    # One partition's state changes of a batch go out as ONE record batch, which the
                    # broker appends atomically: a crash then leaves a partition's state either before
                    # or after the batch, never half of it (its input offsets are in the same batch).
                    max_batch_size=STATE_BATCH_BYTES,
                    max_request_size=STATE_BATCH_BYTES + 1024 * 1024,
                )
                await producer.start()
                self.producer = producer
            return self.producer

    async def close(self) -> None:
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None


def create_app(
    bootstrap: str,
    *,
    app_id: str = "health-relief-hub",
    store: str = "memory://",
    data_dir: str = ".hub-data/worker",
    web_port: int = 6066,
    register: Callable[[faust.App, HubContext], None] | None = None,
    processing_guarantee: str = "at_least_once",
) -> tuple[faust.App, HubContext]:
    """Build the faust app for ``bootstrap`` (host:port[,host:port]) and register the processors.

    ``register`` defaults to :func:`hub.processors.register_all`; tests pass their own.
    Also applies :func:`pause_after_empty_fetches` to this process's aiokafka consumers.
    """
    pause = pause_after_empty_fetches()
    log.debug("aiokafka: %.0f ms pause after an empty fetch", pause * 1000)
    app = faust.App(
        app_id,
        broker=",".join(f"kafka://{hp}" for hp in bootstrap.split(",")),
        store=store,
        datadir=data_dir,
        topic_partitions=PARTITIONS,
        topic_allow_declare=True,
        web_enabled=False,
        web_port=web_port,
        processing_guarantee=processing_guarantee,
        broker_session_timeout=10.0,  # noida-db, like Kafka, refuses < 6 s
        broker_rebalance_timeout=15.0,  # faust's 60 s default makes every restart wait a minute
        broker_heartbeat_interval=1.0,
        stream_buffer_maxsize=8192,
        table_cleanup_interval=3600.0,
        producer_acks=-1,
    )
    ctx = HubContext(bootstrap=bootstrap)

    @app.service
    class RawProducer(faust.Service):  # type: ignore[misc, valid-type]
        """Stops the worker's raw producer with the app (it is started lazily by the agents)."""

        async def on_stop(self) -> None:
            await ctx.close()

    if register is None:
        from hub.processors import register_all

        register = register_all
    register(app, ctx)
    return app, ctx
