"""A tiny faust worker for the recovery tests: ``python -m tests.integration.faust_counter ARGS``.

It copies each event's value into a table keyed by event id — a *set*, never an increment, which is
how the hub's processors stay correct under at-least-once delivery — and, once table recovery has
completed, dumps the table to a JSON file twice a second so the test can compare states across
restarts and crashes. Built in a factory (no work at import) and started from code with the web
server disabled, so parallel workers never fight over port 6066.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import faust


def make_app(app_id: str, broker: str, store: str, data_dir: Path, source: str, dump: Path) -> faust.App:
    """The counter app; ``broker`` is ``kafka://host:port``, ``store`` ``memory://`` or ``rocksdb://``."""
    app = faust.App(
        app_id,
        broker=broker,
        store=store,
        datadir=str(data_dir),
        web_enabled=False,
        topic_partitions=4,
        broker_session_timeout=6.0,  # noida-db's minimum: a killed worker's partitions return quickly
        broker_heartbeat_interval=1.0,
        broker_rebalance_timeout=10.0,  # noida-db waits this long for a killed member at the next join
        broker_commit_every=100,
        broker_commit_interval=0.5,
    )
    events = app.topic(source, key_serializer="raw", value_serializer="json", partitions=4)
    table = app.Table("values", default=int, partitions=4)

    @app.agent(events)
    async def copy_values(stream: faust.StreamT) -> None:
        async for event in stream:
            table[event["id"]] = event["value"]

    @app.timer(interval=0.5)
    async def dump_table() -> None:
        if not app.tables.recovery.completed.is_set() or app.rebalancing:
            return
        tmp = dump.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "table": dict(table.items())}))
        os.replace(tmp, dump)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("app-id", "broker", "store", "data-dir", "source", "dump"):
        parser.add_argument(f"--{name}", required=True)
    args = parser.parse_args()
    app = make_app(args.app_id, args.broker, args.store, Path(args.data_dir), args.source, Path(args.dump))
    faust.Worker(app, loglevel=os.environ.get("COUNTER_LOGLEVEL", "warning"), quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
