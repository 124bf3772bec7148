"""The audit log (审计日志): append-only, tamper-evident, one entry per delivery, referral transition, settlement.

Why: departments act on what the hub tells them — money is paid on a settlement, a household is visited on
a referral — so afterwards it must be provable what the hub delivered to whom and when, and that nobody
edited that record since. Topics are not that record: retention ends, and anyone with write access to a
topic can add to it.

How: a JSON-lines file. Each entry carries ``seq`` (1, 2, 3 …), ``prev`` (the previous entry's ``mac``) and
``mac`` = HMAC-SHA256(audit key, prev ‖ canonical JSON of the entry without ``mac``): a hash chain under a
key. Without the key nobody can write an entry that verifies, so an edited entry, an inserted one and a
removed one all break the chain where they are, and :func:`verify` names them. A head file beside the log
(``<log>.head``, its last ``seq`` and ``mac``, itself MACed) makes removing entries *from the end* visible
too. For proof against whoever holds the key, copy ``hub audit verify``'s head line somewhere they cannot
write (a daily print-out, another department's system): a rewritten log then no longer ends at that head.

Writers append under an exclusive ``flock``, re-reading the last entry under the lock, so several
connectors may share one log. Entries hold ids, kinds and departments — never an ID number or a name.

    HubError
    └── AuditError    the log cannot be written (not a verification result: those are findings)
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from hub.errors import HubError
from hub.identity import derive_key, redact

__all__ = ["AuditError", "AuditLog", "Problem", "verify", "audit_key", "KINDS"]

KINDS = ("delivery", "referral", "settlement")
GENESIS = "0" * 64


class AuditError(HubError):
    """The audit log cannot be written or read as a log."""


def audit_key(secret: str | bytes) -> bytes:
    """The chain key, derived from ``HUB_AUDIT_KEY`` (so the raw secret is never the MAC key of anything else)."""
    return derive_key(secret, "audit-chain.v1")


def _canonical(entry: dict[str, Any]) -> bytes:
    return json.dumps({k: v for k, v in entry.items() if k != "mac"}, ensure_ascii=False, sort_keys=True,
                      separators=(",", ":")).encode("utf-8")


def _mac(key: bytes, prev: str, entry: dict[str, Any]) -> str:
    return hmac.new(key, prev.encode("ascii") + b"|" + _canonical(entry), hashlib.sha256).hexdigest()


class AuditLog:
    """Appends entries to one log file (and keeps its head file current)."""

    def __init__(self, path: str | os.PathLike[str], key: bytes) -> None:
        self.path = Path(path)
        self.head_path = self.path.with_name(self.path.name + ".head")
        self.key = key

    def append(self, kind: str, at: datetime, ref: str, **fields: Any) -> dict[str, Any]:
        """Append one entry: ``kind`` (delivery | referral | settlement), when, the event id it records, fields.

        ``fields`` are ids, states, departments, amounts — free text in them is masked (``redact``).
        """
        if kind not in KINDS:
            raise AuditError(f"unknown audit entry kind {kind!r}; one of {', '.join(KINDS)}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                last = _last_entry(fh)
                entry: dict[str, Any] = {"seq": (last["seq"] + 1) if last else 1, "at": at.isoformat(), "kind": kind,
                                         "ref": ref, **{k: _safe(v) for k, v in sorted(fields.items())},
                                         "prev": last["mac"] if last else GENESIS}
                entry["mac"] = _mac(self.key, entry["prev"], entry)
                fh.seek(0, os.SEEK_END)
                fh.write(json.dumps(entry, ensure_ascii=False, sort_keys=True).encode("utf-8") + b"\n")
                fh.flush()
                os.fsync(fh.fileno())
                self._write_head(entry)
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return entry

    def refs(self) -> set[str]:
        """Every ``ref`` already in the log (so an at-least-once writer records each event once)."""
        if not self.path.exists():
            return set()
        return {e.get("ref", "") for _n, e, _err in _entries(self.path) if e is not None}

    def _write_head(self, entry: dict[str, Any]) -> None:
        head = {"seq": entry["seq"], "mac": entry["mac"]}
        head["head_mac"] = hmac.new(self.key, _canonical(head), hashlib.sha256).hexdigest()
        tmp = self.head_path.with_name(self.head_path.name + ".tmp")
        tmp.write_text(json.dumps(head) + "\n", encoding="utf-8")
        os.replace(tmp, self.head_path)


def _safe(v: Any) -> Any:
    if isinstance(v, str):
        return redact(v)
    if isinstance(v, list | tuple):
        return [_safe(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _safe(x) for k, x in v.items()}
    return v


def _last_entry(fh: Any) -> dict[str, Any] | None:
    """The last complete entry of an open log (read backwards from the end)."""
    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    if size == 0:
        return None
    block = 4096
    data = b""
    pos = size
    while pos > 0:
        step = min(block, pos)
        pos -= step
        fh.seek(pos)
        data = fh.read(step) + data
        lines = data.rstrip(b"\n").split(b"\n")
        if len(lines) > 1 or pos == 0:
            try:
                return json.loads(lines[-1])
            except ValueError as exc:
                raise AuditError(f"{fh.name}: the last line is not an audit entry ({exc}); run `hub audit verify`") \
                    from None
    return None


def _entries(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                entry = json.loads(raw)
                if not isinstance(entry, dict) or not {"seq", "prev", "mac"} <= set(entry):
                    raise ValueError("not an audit entry")
                yield n, entry, None
            except ValueError as exc:
                yield n, None, str(exc)


@dataclass(frozen=True)
class Problem:
    """One way the log differs from what was written: ``what`` (edited | inserted | removed | unreadable |
    truncated | head), the line and seq it concerns, and a sentence."""

    what: str
    line: int | None
    seq: int | None
    detail: str

    def text(self) -> str:
        where = f"line {self.line}" if self.line is not None else "end of log"
        return f"{self.what}: {where}" + (f" (seq {self.seq})" if self.seq is not None else "") + f": {self.detail}"


def verify(path: str | os.PathLike[str], key: bytes) -> tuple[list[Problem], dict[str, Any] | None]:
    """Check the chain; ``(problems, last good entry)``. No problems: the log is as it was written."""
    path = Path(path)
    entries = list(_entries(path)) if path.exists() else []
    problems: list[Problem] = []
    prev, next_seq = GENESIS, 1
    last: dict[str, Any] | None = None
    for i, (line, entry, error) in enumerate(entries):
        if entry is None:
            problems.append(Problem("unreadable", line, None, f"not an audit entry ({error})"))
            continue
        seq = entry.get("seq")
        self_ok = hmac.compare_digest(_mac(key, str(entry["prev"]), entry), str(entry["mac"]))
        following = next((e for _n, e, _err in entries[i + 1:] if e is not None), None)
        if entry["prev"] == prev and self_ok and seq == next_seq:
            prev, next_seq, last = entry["mac"], seq + 1, entry
        elif entry["prev"] == prev and not self_ok and (following is None or following["prev"] == entry["mac"]):
            problems.append(Problem("edited", line, seq, "its content no longer matches its MAC"))
            prev, next_seq, last = entry["mac"], (seq if isinstance(seq, int) else next_seq) + 1, entry
        elif not self_ok and (following is None or following["prev"] == prev):
            problems.append(Problem("inserted", line, seq, "an entry the chain does not contain (no valid MAC)"))
        elif self_ok and isinstance(seq, int) and seq > next_seq:
            gone = f"seq {next_seq}" if seq == next_seq + 1 else f"seq {next_seq}–{seq - 1}"
            problems.append(Problem("removed", line, seq, f"{gone} removed before this entry"))
            prev, next_seq, last = entry["mac"], seq + 1, entry
        else:
            problems.append(Problem("edited", line, seq, "the chain breaks here (content or link changed)"))
            prev, next_seq, last = entry["mac"], (seq if isinstance(seq, int) else next_seq) + 1, entry
    problems += _check_head(path, key, last, next_seq)
    return problems, last


def _check_head(path: Path, key: bytes, last: dict[str, Any] | None, next_seq: int) -> list[Problem]:
    head_path = path.with_name(path.name + ".head")
    if not head_path.exists():
        return [] if last is None else [Problem("head", None, None, f"{head_path.name} is missing")]
    try:
        head = json.loads(head_path.read_text(encoding="utf-8"))
        expected = hmac.new(key, _canonical({"seq": head["seq"], "mac": head["mac"]}), hashlib.sha256).hexdigest()
    except (ValueError, KeyError, TypeError) as exc:
        return [Problem("head", None, None, f"{head_path.name} is unreadable ({exc})")]
    if not hmac.compare_digest(expected, str(head.get("head_mac"))):
        return [Problem("head", None, None, f"{head_path.name} was edited (no valid MAC)")]
    if head["seq"] >= next_seq:
        gone = f"seq {next_seq}" if head["seq"] == next_seq else f"seq {next_seq}–{head['seq']}"
        return [Problem("truncated", None, None, f"{gone} removed from the end (the head says seq {head['seq']})")]
    if last is not None and head["seq"] == last["seq"] and head["mac"] != last["mac"]:
        return [Problem("head", None, last["seq"], "the last entry is not the one the head recorded")]
    return []


def verify_command(path: Path, secret: str, out: Any) -> int:
    """``hub audit verify``: one line per problem, then the head to keep elsewhere; exit 1 on any problem."""
    if not path.exists():
        out.write(f"{path}: no such audit log\n")
        return 2
    problems, last = verify(path, audit_key(secret))
    for p in problems:
        out.write(p.text() + "\n")
    if last is not None:
        out.write(f"head: seq {last['seq']} mac {last['mac']}\n")
    out.write(f"{path}: {'OK, the chain is intact' if not problems else f'{len(problems)} problem(s)'}\n")
    return 1 if problems else 0
