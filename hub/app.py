"""faust App factory. Nothing happens at import time: tests and the CLI build their own app.

What faust does here, and what it does not: faust is the worker framework — the process, its services
and timers, signal handling and an orderly stop, logging, the web server. Its own Kafka clients are
switched off (:class:`HubBoot`): the person processor needs per-task control of fetching, merging and
committing that faust's agents and tables cannot give (policy-spec §8; why in
:mod:`hub.processors.stream`), so it drives aiokafka itself, as a service of this app. Without the switch
faust would still join a consumer group of its own and create its ``__assignor-__leader`` topic.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import faust
from faust.app.base import BootStrategy

from hub.topics import APP_ID

log = logging.getLogger(__name__)


class HubBoot(BootStrategy):  # type: ignore[misc]
    """faust's documented start-up strategy hook: no faust consumer, producer, conductor or tables."""

    enable_kafka = False
    enable_kafka_consumer = False
    enable_kafka_producer = False


class HubApp(faust.App):  # type: ignore[misc]
    BootStrategy = HubBoot


def create_app(
    bootstrap: str,
    *,
    app_id: str = APP_ID,
    data_dir: str = ".hub-data/worker",
    web_port: int = 6066,
    register: Callable[[faust.App, str, str], Any] | None = None,
) -> faust.App:
    """Build the faust app for ``bootstrap`` (host:port[,host:port]) and register the processors.

    ``register(app, bootstrap, app_id)`` defaults to :func:`hub.processors.register_all`; tests and
    benchmarks pass their own.
    """
    app = HubApp(
        app_id,
        broker=",".join(f"kafka://{hp}" for hp in bootstrap.split(",")),
        store="memory://",
        datadir=data_dir,
        web_enabled=False,
        web_port=web_port,
    )
    if register is None:
        from hub.processors import register_all

        register = register_all
    register(app, bootstrap, app_id)
    return app
