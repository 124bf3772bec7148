"""A monitoring engine rebuilt from its serialised state continues exactly as one that never stopped.

This is what a restarted worker relies on: the person processor persists ``to_dict()`` of every
subject and the engine clock, and rebuilds the engine (and its due-time index) from them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hub.policy.loader import load_policy
from hub.policy.monitor.engine import MonitorEngine
from hub.policy.monitor.inputs import parse_input
from hub.policy.monitor.state import FacilityState, PersonState
from hub.simulate import Province

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
POLICY = load_policy(Path(__file__).resolve().parents[2] / "hub" / "policy" / "regions" / "532503_mengzi.toml")


def _lines() -> list[dict]:
    """Simulated county events as §7 lines (the processor's own conversion)."""
    from datetime import date

    from hub import codec
    from hub.processors.convert import monitor_line
    from hub.runtime import encode_input

    out = []
    for ev in Province(seed=3, persons=150, start=date(2024, 6, 1)).events(4000):
        if ev.topic == "health.discharges.v1":
            continue
        _, data = encode_input(ev.topic, ev.value)
        line = monitor_line(ev.topic, codec.decode(data)[1])
        if line is not None:
            out.append(line)
    return out


def _run(engine: MonitorEngine, lines: list[dict]) -> list[str]:
    outs: list[str] = []
    for line in lines:
        try:
            inp = parse_input(line)
        except Exception:
            continue
        outs.extend(json.dumps(o.to_json(), sort_keys=True) for o in engine.apply(inp))
    return outs


def _restored(engine: MonitorEngine) -> MonitorEngine:
    persons = {k: PersonState.from_dict(json.loads(json.dumps(v.to_dict()))) for k, v in engine.persons.items()}
    facilities = {k: FacilityState.from_dict(json.loads(json.dumps(v.to_dict())))
                  for k, v in engine.facilities.items()}
    return MonitorEngine(engine.policy, persons, facilities, json.loads(json.dumps(engine.state_dict())))


@pytest.mark.parametrize("cut", [0.3, 0.5, 0.8])
def test_engine_restored_from_its_state_continues_like_one_that_never_stopped(cut: float) -> None:
    lines = _lines()
    k = int(len(lines) * cut)
    whole = MonitorEngine(POLICY)
    expected = _run(whole, lines)
    first = MonitorEngine(POLICY)
    got = _run(first, lines[:k])
    got += _run(_restored(first), lines[k:])
    assert got == expected
