"""The ``hub connector …`` commands as plain functions (the lead wires them into typer).

Each takes its output streams and returns an exit code, so tests call them directly:
0 = done, 1 = the connector failed while running, 2 = the configuration cannot be used.
"""

from __future__ import annotations

import keyword
import logging
import signal
import threading
from pathlib import Path
from typing import Any, TextIO

from connectors.sdk import plugins
from connectors.sdk.errors import ConfigError, PluginNotFound
from connectors.sdk.loader import build, check_secrets, load_config, runner_for
from connectors.sdk.scaffold import scaffold
from hub.metrics import start_exporter, stop_exporter


def connector_list(out: TextIO) -> int:
    """Print every connector found (built-ins and the ``hub.connectors`` entry points)."""
    out.write(f"{'name':<14} {'kind':<7} {'origin':<12} class\n")
    for name, plugin in plugins.discover().items():
        try:
            kind = plugin.load().kind
        except PluginNotFound as exc:
            kind = f"broken: {exc}"
        out.write(f"{name:<14} {kind:<7} {plugin.origin:<12} {plugin.target}\n")
    return 0


def connector_validate(config_path: str, out: TextIO, err: TextIO) -> int:
    """Validate a configuration without touching the broker or the department system."""
    try:
        cls, cfg = load_config(config_path)
    except ConfigError as exc:
        err.write(f"invalid: {exc}\n")
        return 2
    target = getattr(cfg, "topic", None) or ", ".join(getattr(cfg, "topics", []))
    arrow = "→" if cls.kind == "source" else "←"
    out.write(f"ok: {cfg.name} ({cfg.connector}, {cls.kind}) {arrow} {target}\n")
    return 0


def connector_run(config_path: str, bootstrap: str, out: TextIO, err: TextIO, *, once: bool = False) -> int:
    """Run a connector until SIGINT/SIGTERM (or, with ``once``, until caught up)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cls, cfg = load_config(config_path)
        for warning in check_secrets(cfg, f"hub connector run {config_path}"):
            err.write(warning + "\n")
        connector = build(cls, cfg)
    except ConfigError as exc:
        err.write(f"invalid: {exc}\n")
        return 2
    stop = threading.Event()
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    server = None
    if cfg.metrics_port is not None:
        server, port = start_exporter("0.0.0.0", cfg.metrics_port)
        out.write(f"metrics on :{port}/metrics\n")
    try:
        stats = runner_for(connector, bootstrap, stop=stop).run(once=once)
    except Exception as exc:  # every failure while running becomes exit 1 with its reason
        err.write(f"{cfg.name}: failed: {type(exc).__name__}: {exc}\n")
        return 1
    finally:
        if server is not None:
            stop_exporter(server)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    out.write(f"{cfg.name}: produced {stats.produced}, rejected {stats.rejected}, delivered {stats.delivered}, "
              f"dead-lettered {stats.dead_lettered}, commits {stats.commits}\n")
    return 0


def connector_new(name: str, dest_dir: str, out: TextIO, err: TextIO) -> int:
    """Scaffold a connector package (class, config, sample, entry point, passing test)."""
    if not name.isidentifier() or keyword.iskeyword(name) or not name.islower():
        err.write(f"invalid name {name!r}: use a lower-case Python identifier, e.g. township_clinic_csv\n")
        return 2
    try:
        root = scaffold(name, Path(dest_dir))
    except FileExistsError as exc:
        err.write(f"{exc}\n")
        return 2
    out.write(f"created {root}\n  run its test: cd {root} && python -m pytest -q\n")
    return 0
