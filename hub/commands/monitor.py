"""``hub monitor`` — the reference command of policy-spec §7 for deposit waiver, risk flags,
referrals and reconciliation (§4–§6).

A thin shell: load the policy, then for each line of EVENTS.jsonl decode → ``parse_input`` →
``MonitorEngine.apply`` → print one JSON line per output. The engine is the very code the
monitoring stream processors run, so this command is how a domain expert checks them.

Line numbers are 1-based and count blank lines; lines end at ``\\n``, ``\\r\\n`` or ``\\r`` (as a
text file is read in Python). An invalid line prints one ``error`` whose ``at`` is the clock (null
before the first valid input) and changes nothing. The command exits 0 after the last line; a
policy that cannot be loaded, or an events file that cannot be read, exits 2 with the message on
stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from hub.errors import PolicyError, ValidationError
from hub.policy.loader import load_policy
from hub.policy.monitor import InputRefused, MonitorEngine, error_line, parse_input

__all__ = ["monitor_command", "main"]

EXIT_OK = 0
EXIT_LOAD_ERROR = 2


def _not_json(name: str) -> Any:
    """``NaN``, ``Infinity`` and ``-Infinity`` are Python's extensions, not JSON (RFC 8259)."""
    raise ValueError(f"{name} is not a JSON value")


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


def _outputs_for_line(engine: MonitorEngine, raw: bytes, lineno: int) -> list[dict[str, Any]] | None:
    """The §7 output lines for one input line (None: a blank line, skipped)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [error_line(lineno, "invalid_input", f"not UTF-8 text: {exc}", engine.clock)]
    if not text.strip():
        return None
    try:
        obj = json.loads(text, parse_constant=_not_json)
    except (ValueError, RecursionError) as exc:
        return [error_line(lineno, "invalid_input", f"not a JSON object: {exc}", engine.clock)]
    if "\\u" in text and _has_lone_surrogate(obj):
        # "\ud800" decodes to a str that is not Unicode text: it could not even be printed back.
        return [error_line(lineno, "invalid_input", "a string holds a lone UTF-16 surrogate escape", engine.clock)]
    try:
        inp = parse_input(obj)
    except ValidationError as exc:
        return [error_line(lineno, "invalid_input", str(exc), engine.clock)]
    return [o.to_json(lineno) if isinstance(o, InputRefused) else o.to_json() for o in engine.apply(inp)]


def monitor_command(policy_path: str, events_path: str, out: TextIO, err: TextIO) -> int:
    """Run EVENTS.jsonl through the monitoring engine under one policy; return the exit code."""
    try:
        policy = load_policy(policy_path)
    except PolicyError as exc:
        err.write(f"hub monitor: policy error: {exc}\n")
        return EXIT_LOAD_ERROR
    try:
        data = Path(events_path).read_bytes()
    except OSError as exc:
        err.write(f"hub monitor: cannot read {events_path}: {exc.strerror or exc}\n")
        return EXIT_LOAD_ERROR
    data = data.removeprefix(b"\xef\xbb\xbf")
    engine = MonitorEngine(policy, global_ids=True)
    for lineno, raw in enumerate(data.splitlines(), start=1):
        lines = _outputs_for_line(engine, raw, lineno)
        for line in lines or ():
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """``python -m hub.commands.monitor --policy P FILE`` (the typer CLI wraps the same call)."""
    parser = argparse.ArgumentParser(prog="hub monitor", description=__doc__.splitlines()[0])
    parser.add_argument("--policy", required=True, help="policy TOML file governing every input")
    parser.add_argument("events", help="EVENTS.jsonl: one §7 input per line")
    args = parser.parse_args(argv)
    return monitor_command(args.policy, args.events, sys.stdout, sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
