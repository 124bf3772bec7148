"""``python -m hub.worker`` / ``hub worker``: one faust worker process.

Reads HUB_* settings, refuses an embedded broker address it cannot reach, runs the conformance
probe (unless a parent that already ran it says ``HUB_SKIP_PROBE=1``), serves Prometheus metrics
and runs the processors until SIGTERM/SIGINT.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from hub.config import get_settings


def main() -> int:
    settings = get_settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    log = logging.getLogger("hub.worker")
    # The Kafka clients log every connection and metadata refresh at INFO (the reaper's admin client every
    # 10 s): the worker's log is for what the hub does, so they speak from WARNING up.
    for noisy in ("kafka", "aiokafka"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    if settings.broker == "embedded":
        sys.stderr.write(
            "hub worker: HUB_BROKER is 'embedded'; a worker joins a running broker. Start everything with "
            "`hub up`, or set HUB_BROKER=kafka://host:port.\n"
        )
        return 2
    bootstrap = ",".join(settings.bootstrap_servers())
    from hub.identity import warn_if_dev_key

    warn_if_dev_key(settings, log)
    if not settings.skip_probe:
        from hub.doctor import render, run_probe

        checks = run_probe(bootstrap)
        sys.stderr.write(render(checks) + "\n")
        if any(c.required and not c.ok for c in checks):
            sys.stderr.write("hub worker: the broker lacks what the hub relies on (see above); not starting.\n")
            return 3
    from hub.app import create_app
    from hub.broker import ensure_topics
    from hub.metrics import start_exporter
    from hub.topics import internal_topics

    app_id = settings.app_id
    # The worker's own state topic (one partition per task) must exist before any task restores from it.
    ensure_topics(bootstrap, internal_topics(app_id))
    if settings.metrics_port >= 0:
        _server, port = start_exporter(settings.metrics_host, settings.metrics_port)
        log.info("metrics: http://%s:%s/metrics", settings.metrics_host, port)
    worker_dir = Path(settings.data_dir) / "worker"
    worker_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(bootstrap, app_id=app_id, data_dir=str(worker_dir), web_port=settings.web_port)
    from faust.worker import Worker

    level = {"warning": "warn"}.get(settings.log_level, settings.log_level)
    # Exits non-zero when a service crashed (the person stream gives up after repeated failures), so that
    # a supervisor (hub up, systemd, Kubernetes) restarts it.
    Worker(app, loglevel=level, quiet=True).execute_from_commandline()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
