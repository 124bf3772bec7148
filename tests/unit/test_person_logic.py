"""The person processor's rules over one task, without a broker: what no scenario file shows easily."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hub import codec
from hub.processors import build_logic, person
from hub.processors.replay import Replay
from hub.runtime import encode_input

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


def run(name: str) -> list[tuple[str, dict]]:
    replay = Replay(build_logic())
    for raw in (SCENARIOS / f"{name}.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            obj = json.loads(raw)
            key, value = encode_input(obj["topic"], obj["value"])
        except Exception:
            continue
        replay.produce(obj["topic"], key, value)
    replay.run()
    return [(r["topic"], codec.decode(r["value"])[1]) for r in replay.outputs]


def test_an_output_record_too_large_for_kafka_becomes_a_dead_letter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 15: a record Kafka would refuse (its max.message.bytes) must not fail the task's transaction for
    ever; it is a dead letter ``output_too_large`` carrying the input that caused it."""
    normal = run("replay_settlement")
    settlements = [v for t, v in normal if t == "hub.settlements.v1"]
    assert settlements
    smallest = min(len(codec.encode("hub.outputs.Settlement", s)) for s in settlements)
    monkeypatch.setattr(person, "MAX_OUTPUT_BYTES", smallest - 1)  # no settlement record fits any more
    shrunk = run("replay_settlement")
    assert not [v for t, v in shrunk if t == "hub.settlements.v1"]
    dead = [v for t, v in shrunk if t == "hub.dead-letters.v1" and v["reason"] == "output_too_large"
            and "hub.settlements.v1" in v["detail"]]
    assert len(dead) == len(settlements)  # one per settlement record that would have been written
    assert all(d["topic"] == "health.discharges.v1" and d["original"] for d in dead)


def test_a_subject_that_is_not_a_token_never_reaches_the_state() -> None:
    """A writer that bypasses the edge (no connector, no schema model) puts ``530102…`` where a token belongs:
    the processor refuses it too, so no raw identifier becomes a state key (issue 16)."""
    from hub.processors.person import decode_input
    from hub.processors.task import TaskState

    logic = build_logic()
    from datetime import datetime

    from hub.timeutil import SHANGHAI

    value = {"event_id": "e1", "occurred_at": datetime(2024, 1, 5, 9, tzinfo=SHANGHAI),
             "person_token": "530102199001011231", "categories": ["monitored"], "household_income_fen": None,
             "region_code": "532503"}
    raw = codec.encode("hub.revitalization.PovertyStatusChanged", value)  # Avro only: no model in the way
    from hub.processors.partitioning import partition_for
    p = partition_for(b"530102199001011231", 4)
    task: TaskState = logic.new_task(p)
    rec = decode_input("revitalization.poverty-status.v1", p, 0, b"530102199001011231", raw, 0)
    result = logic.process(task, [rec], 0)
    dead = [codec.decode(v)[1] for t, _, v, _ in result.outputs if t == "hub.dead-letters.v1"]
    assert [d["reason"] for d in dead] == ["invalid_input"]
    assert "530102199001011231" not in dead[0]["detail"]
    assert len(task.persons) == 0 and not any(k.startswith(b"p:") for k in result.state)


def test_referral_departments_are_every_routed_department_of_the_home_region() -> None:
    """What the open-referral gauge shows 0 for: read here from the home region's policy files themselves."""
    import tomllib

    from hub.config import get_settings

    settings = get_settings()
    regions = Path(__file__).resolve().parents[2] / "hub" / "policy" / "regions"
    expected = set()
    for path in regions.glob(f"{settings.region}_*.toml"):
        expected |= {r["department"] for r in tomllib.loads(path.read_text("utf-8"))["referrals"]["route"]}
    assert expected and build_logic().referral_departments() == sorted(expected)
