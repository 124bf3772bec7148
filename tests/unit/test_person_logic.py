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
