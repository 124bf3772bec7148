"""``hub`` — the command line of the health-relief integration hub.

Every command is a thin shell: it parses arguments and calls the module that owns the work, so
the same code runs from the CLI, the stream processors and the tests. Heavy imports (faust,
kafka) happen inside the commands, so ``hub --help`` and ``hub settle`` stay fast.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import typer

app = typer.Typer(
    help="Event-driven integration hub for health poverty-alleviation (一站式结算, 防止因病返贫监测, 救助转介).",
    no_args_is_help=True,
    add_completion=False,
)
connector_app = typer.Typer(help="Department connectors at the edge: list, validate, run, scaffold.")
schemas_app = typer.Typer(help="The Avro event contract in schemas/: list it, check compatibility.")
privacy_app = typer.Typer(help="Privacy checks: look for ID numbers, names and unkeyed ids where none may be.")
audit_app = typer.Typer(help="The tamper-evident audit log of deliveries, referral transitions and settlements.")
app.add_typer(connector_app, name="connector")
app.add_typer(schemas_app, name="schemas")
app.add_typer(privacy_app, name="privacy")
app.add_typer(audit_app, name="audit")


@app.command()
def settle(
    discharges: Path = typer.Argument(..., help="JSON lines: discharges or {\"reverses\": id}", exists=True),
    policy: Path = typer.Option(..., "--policy", help="policy TOML file (policy-spec §2)"),
    person: Path = typer.Option(..., "--person", help='PERSON.json: {"categories": [...], "enrolled_years": [...]}'),
) -> None:
    """Settle discharges for one person exactly as the settlement processor does (policy-spec §3)."""
    from hub.commands.settle import settle_command

    raise typer.Exit(settle_command(str(policy), str(person), str(discharges), sys.stdout, sys.stderr))


@app.command()
def monitor(
    events: Path = typer.Argument(..., help="JSON lines with type and at (policy-spec §7)", exists=True),
    policy: Path = typer.Option(..., "--policy", help="policy TOML file governing every input"),
) -> None:
    """Run the deposit-waiver, risk-flag, referral and reconciliation rules on event time (§4–7)."""
    from hub.commands.monitor import monitor_command

    raise typer.Exit(monitor_command(str(policy), str(events), sys.stdout, sys.stderr))


@app.command()
def up(
    simulate: bool = typer.Option(True, help="run the synthetic province simulator"),
    persons: int = typer.Option(5000, help="simulated persons"),
    rate: float = typer.Option(500.0, help="most simulated events per second while the simulator catches up to now"),
    admissions: float = typer.Option(10.0, "--admissions-per-minute", min=0.0,
                                     help="hospital admissions per minute once the simulator follows the wall clock "
                                          "(a busy province's pace, so settlements show every minute; 0 = a county's)"),
    reset: bool = typer.Option(False, help="delete the embedded broker's data dir first"),
    duration: float = typer.Option(0.0, help="stop after this many seconds (0 = until Ctrl-C)"),
) -> None:
    """Start the hub and supervise it: embedded broker (or HUB_BROKER), topics, worker, counter API, simulator.

    The simulator starts a day back, catches up to the present at --rate events/s, then follows the wall clock
    (it never produces an event from the future). A worker or simulator that dies is restarted with backoff;
    the progress line shows each part's state and the worker's lag. Ctrl-C or SIGTERM stops everything within
    15 s; every part dies with hub up, even on kill -9. Exit code 1 when a part had FAILED.
    """
    from hub.runtime import up_command

    raise typer.Exit(up_command(simulate=simulate, persons=persons, rate=rate, reset=reset, duration=duration,
                                busy_per_minute=admissions))


@app.command()
def api(
    host: str = typer.Option("127.0.0.1", help="listen address (0.0.0.0 only behind a TLS proxy)"),
    port: int | None = typer.Option(None, help="port (default: HUB_API_PORT, 8080; 0 = any free port)"),
) -> None:
    """Serve the hospital counter API against HUB_BROKER: admissions and discharges answered in the request.

    Also serves /metrics on HUB_METRICS_PORT (every hub process does: the API's request outcomes and its
    process health are scraped like a connector's)."""
    from hub.api import serve_api_command
    from hub.config import get_settings
    from hub.metrics import connector_metrics

    settings = get_settings()
    with connector_metrics("counter-api", "source", serve=True, host=settings.metrics_host,
                           port=settings.metrics_port, out=sys.stdout):
        code = serve_api_command(host, port)
    raise typer.Exit(code)


@app.command()
def worker() -> None:
    """Run one processor worker against HUB_BROKER (scale out by starting more)."""
    from hub.runtime import worker_command

    raise typer.Exit(worker_command())


@app.command()
def replay(
    inputs: Path = typer.Argument(..., help='JSON lines {"topic": ..., "value": {...}}', exists=True),
    dump: Path = typer.Option(..., "--dump", help="where to write every output topic as JSON lines"),
    idle: float = typer.Option(0.0, hidden=True, help="accepted for compatibility; unused"),
    until: datetime | None = typer.Option(
        None, "--until", formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S"],
        help="then move every task's clock to this time (Asia/Shanghai unless it has an offset), as a live "
             "worker's wall clock does once it is caught up (§8.3): the due times up to it fire"),
) -> None:
    """The reference run of policy-spec §8: what the live stream must output for these inputs.

    Each line is put on its topic as a producer would (in line order), each task's topic-partitions are
    merged by event time, and the person processor's rules apply them on event time only. No broker is
    started. Rejected lines go to the dead letters. Outputs are dumped as JSON lines
    {topic, partition, offset, key, schema, value}; compare live outputs with them by event_id.
    Without --until the clock stops at the last input, as a worker's with HUB_WALL_CLOCK=0.
    """
    from hub.runtime import replay_command
    from hub.timeutil import SHANGHAI

    if until is not None and until.tzinfo is None:
        until = until.replace(tzinfo=SHANGHAI)
    raise typer.Exit(replay_command(inputs, dump, until=until))


@app.command()
def simulate(
    out: Path = typer.Option(Path("-"), "--out", help="replay lines to this file (- = stdout)"),
    persons: int = typer.Option(1000),
    events: int = typer.Option(10000),
    seed: int = typer.Option(7),
) -> None:
    """Write a synthetic province's events as `hub replay` input lines."""
    from hub.simulate import Province, to_replay_lines

    province = Province(seed=seed, persons=persons)
    stream = sys.stdout if str(out) == "-" else out.open("w", encoding="utf-8")
    try:
        for line in to_replay_lines(province.events(events)):
            stream.write(line + "\n")
    finally:
        if stream is not sys.stdout:
            stream.close()


@app.command()
def doctor() -> None:
    """Probe the configured broker: offsets, transactions, group join, catalogue topics."""
    from hub.config import get_settings
    from hub.doctor import doctor_command

    raise typer.Exit(doctor_command(get_settings(), sys.stdout, sys.stderr))


@schemas_app.command("list")
def schemas_list() -> None:
    """List every schema with its topic, schema id and fields."""
    from hub.schemacheck import schemas_command

    raise typer.Exit(schemas_command("list", sys.stdout, sys.stderr))


@schemas_app.command("check")
def schemas_check(
    against: str = typer.Option("", help="a released version or a git revision (default: the last release)"),
) -> None:
    """Check every .avsc still reads data written with the last release's schemas (schemas/released/)."""
    from hub.schemacheck import schemas_command

    raise typer.Exit(schemas_command("check", sys.stdout, sys.stderr, base_rev=against or None))


@schemas_app.command("release")
def schemas_release(version: str = typer.Argument(..., help="the version being released, e.g. 0.2.0")) -> None:
    """Snapshot the schemas as released in VERSION (schemas/released/VERSION.json), after checking them."""
    from hub.schemacheck import schemas_command

    raise typer.Exit(schemas_command("release", sys.stdout, sys.stderr, version=version))


@connector_app.command("list")
def connector_list() -> None:
    """Connectors found through the `hub.connectors` entry-point group."""
    from connectors.cli import connector_list as run

    raise typer.Exit(run(sys.stdout))


@connector_app.command("validate")
def connector_validate(config: Path = typer.Argument(..., exists=True)) -> None:
    """Validate a connector YAML config; errors name the key."""
    from connectors.cli import connector_validate as run

    raise typer.Exit(run(str(config), sys.stdout, sys.stderr))


@connector_app.command("run")
def connector_run(
    config: Path = typer.Argument(..., exists=True),
    bootstrap: str = typer.Option("", help="host:port of the broker (default: HUB_BROKER)"),
    once: bool = typer.Option(False, help="process what is there now, then stop"),
) -> None:
    """Run a connector until Ctrl-C (offsets are kept; a restart resumes). Serves /metrics on HUB_METRICS_PORT."""
    from connectors.cli import connector_run as run
    from connectors.sdk.loader import load_config
    from hub.config import get_settings
    from hub.metrics import connector_metrics

    settings = get_settings()
    servers = bootstrap or ",".join(settings.bootstrap_servers())
    try:
        cls, cfg = load_config(config)
    except Exception:  # an invalid config: the run reports it with its key, and exits 2
        raise typer.Exit(run(str(config), servers, sys.stdout, sys.stderr, once=once)) from None
    with connector_metrics(cfg.name, cls.kind, serve=cfg.metrics_port is None, host=settings.metrics_host,
                           port=settings.metrics_port, out=sys.stdout):
        code = run(str(config), servers, sys.stdout, sys.stderr, once=once)
    raise typer.Exit(code)


@connector_app.command("new")
def connector_new(
    name: str = typer.Argument(..., help="python identifier of the new connector"),
    dest: Path = typer.Option(Path("."), help="folder to create the package in"),
) -> None:
    """Scaffold a connector package with a passing test."""
    from connectors.cli import connector_new as run

    raise typer.Exit(run(name, str(dest), sys.stdout, sys.stderr))


@privacy_app.command("scan")
def privacy_scan(
    bootstrap: str = typer.Option("", help="broker to read every topic of (host:port; default: HUB_BROKER if kafka://)"),
    files: list[Path] = typer.Option([], "--files", help="exported files, folders and logs to scan"),
    url: list[str] = typer.Option([], "--url", help="text endpoints to scan, e.g. the worker's /metrics"),
    roster: list[Path] = typer.Option([], "--roster", help="input rosters (CSV/XLSX or folders): their names and "
                                                          "ID numbers are what to look for"),
) -> None:
    """Report any valid ID number, any roster name, and any id computable from an ID number without a key."""
    from hub.config import get_settings
    from hub.privacy import scan_command

    settings = get_settings()
    servers = bootstrap or (",".join(settings.bootstrap_servers()) if settings.broker != "embedded" else "")
    raise typer.Exit(scan_command(bootstrap=servers or None, files=files, urls=url, rosters=roster))


@audit_app.command("verify")
def audit_verify(log: Path = typer.Argument(..., help="the audit log (JSON lines; its .head file beside it)")) -> None:
    """Check the hash chain; name every edited, inserted or removed entry (key: HUB_AUDIT_KEY)."""
    from hub.audit import verify_command
    from hub.config import get_settings

    raise typer.Exit(verify_command(log, get_settings().audit_key, sys.stdout))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
