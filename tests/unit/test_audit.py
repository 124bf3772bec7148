"""hub.audit: the hash-chained audit log finds an edited, inserted or removed entry and names it."""

from __future__ import annotations

import json
import multiprocessing
from datetime import datetime
from pathlib import Path

import pytest

from hub.audit import AuditLog, audit_key, verify
from hub.timeutil import SHANGHAI

KEY = audit_key("test-audit-key-" + "x" * 30)
T = datetime(2024, 3, 5, 9, 0, tzinfo=SHANGHAI)


def written(tmp_path: Path, n: int = 5) -> Path:
    log = AuditLog(tmp_path / "audit.jsonl", KEY)
    for i in range(1, n + 1):
        log.append("settlement" if i % 2 else "referral", T, f"event-{i}", department="civil_affairs", amount_fen=i)
    return log.path


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def rewrite(path: Path, new: list[str]) -> None:
    path.write_text("\n".join(new) + "\n", encoding="utf-8")


def test_an_untouched_log_verifies(tmp_path: Path) -> None:
    problems, last = verify(written(tmp_path), KEY)
    assert problems == [] and last is not None and last["seq"] == 5


def test_an_edited_entry_is_named(tmp_path: Path) -> None:
    path = written(tmp_path)
    entries = lines(path)
    e = json.loads(entries[2])
    e["amount_fen"] = 999_999  # the amount paid, changed afterwards
    entries[2] = json.dumps(e, ensure_ascii=False, sort_keys=True)
    rewrite(path, entries)
    problems, _ = verify(path, KEY)
    assert [(p.what, p.line, p.seq) for p in problems] == [("edited", 3, 3)]


def test_an_inserted_entry_is_named(tmp_path: Path) -> None:
    path = written(tmp_path)
    entries = lines(path)
    forged = {**json.loads(entries[1]), "ref": "event-forged", "seq": 3}
    rewrite(path, entries[:2] + [json.dumps(forged)] + entries[2:])
    problems, _ = verify(path, KEY)
    assert [(p.what, p.line) for p in problems] == [("inserted", 3)]


def test_a_removed_entry_is_named(tmp_path: Path) -> None:
    path = written(tmp_path)
    entries = lines(path)
    rewrite(path, entries[:1] + entries[2:])  # seq 2 taken out
    problems, _ = verify(path, KEY)
    assert [(p.what, p.seq) for p in problems] == [("removed", 3)] and "seq 2 removed" in problems[0].detail


def test_entries_removed_from_the_end_are_found_by_the_head(tmp_path: Path) -> None:
    path = written(tmp_path)
    rewrite(path, lines(path)[:3])
    problems, _ = verify(path, KEY)
    assert [p.what for p in problems] == ["truncated"] and "seq 4–5" in problems[0].detail


def test_a_rewritten_chain_without_the_key_does_not_verify(tmp_path: Path) -> None:
    path = written(tmp_path)
    forger = AuditLog(tmp_path / "forged.jsonl", audit_key("not-the-key"))
    for i in range(1, 6):
        forger.append("settlement", T, f"event-{i}", amount_fen=0)
    forger.path.replace(path)
    forger.head_path.replace(path.with_name(path.name + ".head"))
    problems, _ = verify(path, KEY)
    assert problems and problems[0].line == 1


def _append_many(path: str, n: int) -> None:
    log = AuditLog(path, KEY)
    for i in range(n):
        log.append("delivery", T, f"w-{i}")


def test_several_writers_share_one_log(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.jsonl")
    procs = [multiprocessing.get_context("fork").Process(target=_append_many, args=(path, 40)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    problems, last = verify(path, KEY)
    assert problems == [] and last is not None and last["seq"] == 120


def test_free_text_in_an_entry_is_masked(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "a.jsonl", KEY)
    entry = log.append("referral", T, "e1", reason="身份证 11010519491231002X 不符")
    assert "11010519491231002X" not in json.dumps(entry, ensure_ascii=False)
    with pytest.raises(Exception, match="unknown audit entry kind"):
        log.append("gossip", T, "e2")
