"""``hub settle --policy POLICY.toml --person PERSON.json DISCHARGES.jsonl`` (policy-spec §3, reference command)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from hub.commands.settle import settle_command

FIXTURES = Path(__file__).parent / "fixtures"
POLICY = FIXTURES / "spec_example_policy.toml"
ROOT = Path(__file__).resolve().parents[2]

D1 = {"discharge_id": "d1", "discharged_at": "2024-03-05", "level": "L2", "in_county": True,
      "referred": False, "total_fen": 1234500, "out_of_policy_fen": 100000}
# spec example policy, 脱贫人口 enrolled 2024 (see test_settlement for the arithmetic)
D1_OUT = {"discharge_id": "d1", "year": 2024, "policy": "530000", "basic_fen": 867600, "critical_fen": 0,
          "assistance_fen": 33450, "top_up_fen": 210000, "patient_fen": 123450, "total_fen": 1234500,
          "out_of_policy_fen": 100000, "actual_ratio_bp": 9000}


def run(tmp_path: Path, lines: list[object], person: object | None = None,
        policy: Path = POLICY) -> tuple[int, list[dict], str]:
    person_path = tmp_path / "person.json"
    person_path.write_text(json.dumps(person if person is not None else
                                      {"categories": ["poverty_alleviated"], "enrolled_years": [2024]}))
    data = tmp_path / "discharges.jsonl"
    data.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    code = settle_command(str(policy), str(person_path), str(data), out, err)
    return code, [json.loads(x) for x in out.getvalue().splitlines()], err.getvalue()


def test_one_object_per_non_blank_line_in_order(tmp_path: Path) -> None:
    """§3: one JSON object per input line, in order; blank lines are skipped; exit 0."""
    d2 = {**D1, "discharge_id": "d2", "total_fen": 0, "out_of_policy_fen": 0}
    code, out, _ = run(tmp_path, [D1, "", "   ", d2])
    assert code == 0
    assert out[0] == D1_OUT
    assert [o["discharge_id"] for o in out] == ["d1", "d2"]
    assert out[1]["actual_ratio_bp"] == 0 and out[1]["patient_fen"] == 0  # T = 0 settles


def test_reversal_line_output(tmp_path: Path) -> None:
    """§3: a reversal negates every *_fen field, keeps actual_ratio_bp; discharge_id and reverses = the id."""
    code, out, _ = run(tmp_path, [D1, {"reverses": "d1"}])
    rev = out[1]
    assert code == 0
    assert rev["discharge_id"] == rev["reverses"] == "d1"
    for key, value in D1_OUT.items():
        if key.endswith("_fen"):
            assert rev[key] == -value
    assert rev["actual_ratio_bp"] == 9000 and rev["year"] == 2024 and rev["policy"] == "530000"


def test_error_lines_and_their_reasons(tmp_path: Path) -> None:
    """§3: error objects for invalid_input, no_policy, unknown_discharge, already_reversed; state unchanged."""
    lines: list[object] = [
        "not json",
        {**D1, "level": "L9"},
        {**D1, "in_county": 1},
        {**D1, "out_of_policy_fen": 2000000},
        {k: v for k, v in D1.items() if k != "referred"},
        {**D1, "discharged_at": "2026-01-01"},  # after effective_to 2025-12-31 → no_policy
        {"reverses": "nope"},
        D1,
        {"reverses": "d1"},
        {"reverses": "d1"},
        {"reverses": 3},
        [1],
    ]
    code, out, _ = run(tmp_path, lines)
    assert code == 0
    reasons = [(o.get("discharge_id", o.get("reverses")), o.get("error")) for o in out]
    assert reasons == [
        (None, "invalid_input"),
        ("d1", "invalid_input"),
        ("d1", "invalid_input"),
        ("d1", "invalid_input"),
        ("d1", "invalid_input"),
        ("d1", "no_policy"),
        ("nope", "unknown_discharge"),
        ("d1", None),  # the rejected lines did not use up d1
        ("d1", None),  # reversal
        ("d1", "already_reversed"),
        (None, "invalid_input"),
        (None, "invalid_input"),
    ]
    assert "reverses" in out[6] and "discharge_id" not in out[6]  # "reverses" in place of "discharge_id"
    assert out[1]["detail"].startswith("level:")
    assert out[3]["detail"].startswith("out_of_policy_fen:")
    assert out[7] == D1_OUT  # settled from a fresh state: the errors changed nothing


def test_redeliveries_return_the_original(tmp_path: Path) -> None:
    """§3 Idempotence; a differing payload also returns the original (the conflict goes to stderr here)."""
    code, out, err = run(tmp_path, [D1, D1, {**D1, "total_fen": 2000000}])
    assert code == 0 and out == [D1_OUT, D1_OUT, D1_OUT]
    assert "conflicting_redelivery" in err


def test_timestamp_in_utc_is_settled_in_the_shanghai_year(tmp_path: Path) -> None:
    """Decided: 2024-12-31T17:00:00Z is in 2025 — enrolment and YTD state of 2025."""
    code, out, _ = run(tmp_path, [{**D1, "discharged_at": "2024-12-31T17:00:00Z"}])
    # not enrolled for 2025: only assistance, mul(1134500 − 200000, 5000) = 467250
    assert out[0]["year"] == 2025
    assert (out[0]["basic_fen"], out[0]["assistance_fen"], out[0]["top_up_fen"]) == (0, 467250, 0)


def test_insured_region_selects_as_in_section_2(tmp_path: Path) -> None:
    """PERSON.json insured_region: the policy's region must be a prefix (530102 → 53 matches; 450100 does not)."""
    person = {"categories": ["poverty_alleviated"], "enrolled_years": [2024], "insured_region": "530102"}
    _, out, _ = run(tmp_path, [D1], person)
    assert out[0] == D1_OUT
    person["insured_region"] = "450100"
    _, out, _ = run(tmp_path, [D1], person)
    assert out[0]["error"] == "no_policy" and out[0]["discharge_id"] == "d1"


def test_policy_directory_selects_per_region(tmp_path: Path) -> None:
    """The bundled region files: a Mengzi-insured person is settled under 532503, not Yunnan's 53."""
    person = {"categories": ["monitored"], "enrolled_years": [2024], "insured_region": "532503"}
    _, out, _ = run(tmp_path, [D1], person, policy=ROOT / "hub" / "policy" / "regions")
    assert out[0]["policy"] == "532503"


def test_policy_load_error_exits_2_with_the_message_on_stderr(tmp_path: Path) -> None:
    """§3: "A load error exits 2 with its message on stderr"."""
    bad = tmp_path / "bad.toml"
    bad.write_text(POLICY.read_text(encoding="utf-8").replace("L2 = 0.75", "L2 = 7.5"), encoding="utf-8")
    code, out, err = run(tmp_path, [D1], policy=bad)
    assert code == 2 and out == []
    assert "basic.ratio.L2" in err and str(bad) in err


@pytest.mark.parametrize("person", [
    ["not", "an", "object"],
    {"enrolled_years": [2024]},
    {"categories": ["poor"], "enrolled_years": [2024]},
    {"categories": [], "enrolled_years": [True]},
    {"categories": [], "enrolled_years": "2024"},
    {"categories": [], "enrolled_years": [2024], "insured_region": 530102},
])
def test_bad_person_json_exits_2(tmp_path: Path, person: object) -> None:
    code, out, err = run(tmp_path, [D1], person)
    assert code == 2 and out == [] and "PERSON.json" in err


def test_unreadable_person_json_exits_2(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text(json.dumps(D1))
    (tmp_path / "p.json").write_text("{oops")
    err = io.StringIO()
    assert settle_command(str(POLICY), str(tmp_path / "p.json"), str(tmp_path / "d.jsonl"), io.StringIO(), err) == 2
    assert "not JSON" in err.getvalue()


def test_module_entry_point(tmp_path: Path) -> None:
    """``python -m hub.commands.settle`` runs the same command."""
    (tmp_path / "person.json").write_text('{"categories": ["poverty_alleviated"], "enrolled_years": [2024]}')
    (tmp_path / "d.jsonl").write_text(json.dumps(D1) + "\n")
    proc = subprocess.run(
        [sys.executable, "-m", "hub.commands.settle", "--policy", str(POLICY), "--person",
         str(tmp_path / "person.json"), str(tmp_path / "d.jsonl")],
        capture_output=True, text=True, cwd=ROOT, check=False, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == D1_OUT
