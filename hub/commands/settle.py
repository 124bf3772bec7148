"""``hub settle`` — the reference command of policy-spec §3 (一站式结算).

A thin shell: read the policy and PERSON.json, then for each line parse → select policy →
``SettlementLedger`` → print. The ledger and ``settle_discharge`` are the very code the settlement
stream processor runs, so this command is how a domain expert checks the processor's numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from hub.errors import PolicyError, ValidationError
from hub.policy.loader import load_policies, select_policy
from hub.policy.model import Policy
from hub.policy.settlement import (
    Discharge,
    PersonFacts,
    Reversal,
    SettlementLedger,
    parse_discharge_line,
    parse_person,
)

__all__ = ["settle_command", "main"]

EXIT_OK = 0
EXIT_LOAD_ERROR = 2


def _read_person(path: str) -> PersonFacts:
    """PERSON.json → PersonFacts; any problem is reported by the caller and exits 2."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError("person", f"cannot read {path}: {exc}") from None
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise ValidationError("person", f"{path} is not JSON: {exc}") from None
    return parse_person(obj)


def _pick_policy(policies: list[Policy], person: PersonFacts, discharge: Discharge) -> Policy | None:
    """§2 selection by the insured region when PERSON.json has one; else any policy covering the date."""
    return select_policy(policies, person.insured_region, discharge.day)


def _error_line(raw: Any, reason: str, detail: str, reversal: bool) -> dict[str, Any]:
    """``{"discharge_id": …, "error": REASON, "detail": …}`` (``reverses`` for a reversal line)."""
    key = "reverses" if reversal else "discharge_id"
    ident = raw.get(key) if isinstance(raw, dict) else None
    return {key: ident if isinstance(ident, str) else None, "error": reason, "detail": detail}


def _settle_line(line: str, policies: list[Policy], person: PersonFacts, ledger: SettlementLedger,
                 err: TextIO, lineno: int) -> dict[str, Any]:
    try:
        raw: Any = json.loads(line)
    except ValueError as exc:
        return _error_line(None, "invalid_input", f"not JSON: {exc}", False)
    is_reversal = isinstance(raw, dict) and "reverses" in raw
    try:
        item = parse_discharge_line(raw)
    except ValidationError as exc:
        return _error_line(raw, exc.reason, str(exc), is_reversal)
    policy = None if isinstance(item, Reversal) else _pick_policy(policies, person, item)
    outcome = ledger.apply(policy, person, item)
    if outcome.error is not None:
        return _error_line(raw, outcome.error, outcome.detail, is_reversal)
    if outcome.conflict:
        err.write(f"line {lineno}: conflicting_redelivery: {outcome.detail}\n")
    assert outcome.result is not None
    return outcome.result.to_output()


def settle_command(policy_path: str, person_path: str, discharges_path: str, out: TextIO, err: TextIO) -> int:
    """Settle every line of DISCHARGES.jsonl for one person; one JSON object out per non-blank line.

    Returns the exit code: 0 when every line was answered (errors included), 2 when the policy,
    PERSON.json or the discharge file cannot be used at all. ``policy_path`` may also be a
    directory of region files, selected per discharge as in §2.
    """
    try:
        policies = load_policies(policy_path)
    except PolicyError as exc:
        err.write(f"hub settle: policy error: {exc}\n")
        return EXIT_LOAD_ERROR
    if not policies:
        err.write(f"hub settle: no policy files found in {policy_path}\n")
        return EXIT_LOAD_ERROR
    try:
        person = _read_person(person_path)
    except ValidationError as exc:
        err.write(f"hub settle: invalid PERSON.json {person_path}: {exc}\n")
        return EXIT_LOAD_ERROR
    try:
        # Lines end at "\n", "\r\n" or a lone "\r" (Python's universal newlines, as `hub monitor`);
        # bytes.splitlines() does not split at U+2028/U+0085, which may stand raw inside a JSON string
        # (str.splitlines() would). A UTF-8 byte-order mark from a Windows editor is not part of line 1.
        chunks = Path(discharges_path).read_bytes().removeprefix(b"\xef\xbb\xbf").splitlines()
    except OSError as exc:
        err.write(f"hub settle: cannot read {discharges_path}: {exc}\n")
        return EXIT_LOAD_ERROR
    ledger = SettlementLedger()
    for lineno, chunk in enumerate(chunks, start=1):
        try:
            line = chunk.decode("utf-8")
        except UnicodeDecodeError as exc:  # one bad line is not JSON; it does not stop the file
            result = _error_line(None, "invalid_input", f"not JSON (not UTF-8 text): {exc}", False)
        else:
            if not line.strip():
                continue
            result = _settle_line(line, policies, person, ledger, err, lineno)
        out.write(json.dumps(result, ensure_ascii=False) + "\n")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """``python -m hub.commands.settle --policy P --person J FILE`` (the typer CLI wraps the same call)."""
    parser = argparse.ArgumentParser(prog="hub settle", description=__doc__.splitlines()[0])
    parser.add_argument("--policy", required=True, help="policy TOML file (or a directory of them)")
    parser.add_argument("--person", required=True,
                        help="PERSON.json: categories, enrolled_years[, insured_region]")
    parser.add_argument("discharges", help="DISCHARGES.jsonl: one discharge or {\"reverses\": id} per line")
    args = parser.parse_args(argv)
    return settle_command(args.policy, args.person, args.discharges, sys.stdout, sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
