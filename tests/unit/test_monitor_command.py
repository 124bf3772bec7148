"""``hub monitor`` as a shell (§7): exit codes, line numbering, error lines."""

from __future__ import annotations

import io
import json
from pathlib import Path

from hub.commands.monitor import monitor_command

POLICY = Path(__file__).resolve().parents[1] / "scenarios" / "monitor_policy.toml"


def _run(tmp_path: Path, data: bytes, policy: Path = POLICY) -> tuple[int, list[dict[str, object]], str]:
    events = tmp_path / "events.jsonl"
    events.write_bytes(data)
    out, err = io.StringIO(), io.StringIO()
    code = monitor_command(str(policy), str(events), out, err)
    return code, [json.loads(x) for x in out.getvalue().splitlines()], err.getvalue()


def test_policy_load_error_exits_2_with_message(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[policy]\nregion = "530000"\nname = "x"\neffective_from = 2024-01-01\n[risk]\n', "utf-8")
    code, out, err = _run(tmp_path, b"", bad)
    assert code == 2 and out == [] and "oop_threshold" in err


def test_line_numbers_count_blank_lines_and_crlf(tmp_path: Path) -> None:
    data = (b'\r\n   \r\n{"type": "tick", "at": "2024-01-01"}\r\n\xff\xfe\r\n'
            b'{"type": "referral_update", "at": "2024-01-02", "referral_id": "a/b/c", "status": "accepted"}\n')
    code, out, _ = _run(tmp_path, data)
    assert code == 0
    assert [(o["line"], o["reason"], o["at"]) for o in out] == [
        (4, "invalid_input", "2024-01-01T00:00:00+08:00"),
        (5, "unknown_referral", "2024-01-02T00:00:00+08:00"),
    ]


def test_error_before_any_valid_input_has_null_at(tmp_path: Path) -> None:
    code, out, _ = _run(tmp_path, b'{"type": "tick", "at": "yesterday"}\n')
    assert code == 0 and out[0]["at"] is None and out[0]["line"] == 1 and out[0]["type"] == "error"


def test_a_settlement_id_seen_before_is_a_redelivery_whoever_it_names(tmp_path: Path) -> None:
    """§7: "a redelivery when its discharge_id with the same reverses … was seen before" — the
    sentence names no person, so `hub monitor` keeps one id space per file. The second `d1`
    (for person B) changes nothing: B's year-to-date patient share stays 0, no burden flag."""
    lines = [
        {"type": "status", "at": "2024-03-01", "person": "A", "source": "revitalization",
         "categories": ["poverty_alleviated"]},
        {"type": "status", "at": "2024-03-01", "person": "B", "source": "revitalization",
         "categories": ["poverty_alleviated"]},
        {"type": "enrollment", "at": "2024-03-01", "person": "A", "year": 2024, "enrolled": True},
        {"type": "enrollment", "at": "2024-03-01", "person": "B", "year": 2024, "enrolled": True},
        {"type": "settlement", "at": "2024-03-02", "person": "A", "discharge_id": "d1", "year": 2024,
         "patient_fen": 10},
        {"type": "settlement", "at": "2024-03-03", "person": "B", "discharge_id": "d1", "year": 2024,
         "patient_fen": 99_000_000},
    ]
    data = "\n".join(json.dumps(x) for x in lines).encode()
    code, outputs, _ = _run(tmp_path, data)
    assert code == 0
    burden = [o for o in outputs if o.get("type") == "flag" and o.get("flag") == "high_medical_burden"]
    assert burden == []
