"""faust App factory. Nothing happens at import time: tests and the CLI build their own app.

The app owns one raw aiokafka producer (see :mod:`hub.processors.shell` for why outputs and
changelog records bypass faust's per-message send path) and registers the processors.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import faust
from aiokafka import AIOKafkaProducer

from hub.topics import PARTITIONS

log = logging.getLogger(__name__)

BATCH_MAX = 2000
BATCH_WITHIN = 0.2


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
                    max_batch_size=256 * 1024,
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
    """
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
