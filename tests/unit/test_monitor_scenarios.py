"""Scenario files for ``hub monitor`` (policy-spec §7), checked against hand-derived expectations.

Each ``tests/scenarios/monitor_NAME.jsonl`` is fed to ``monitor_command`` under
``tests/scenarios/monitor_policy.toml`` (default referral table, oop_threshold 10 000 yuan, income
fraction 0.5, major-disease entries C34, C34.1, I21, grace 30 days, follow-up 90 days), and its
outputs are compared with ``monitor_NAME.expected.jsonl`` the way the spec compares them: as a set
per instant (§7 "outputs of one instant may come in any order"). ``evidence`` (informative, §5.3)
and an error's free-text ``detail`` are not compared.

The expectations were derived from the spec by hand, line by line:

* ``uninsured`` — 应保尽保: a status and an enrolment at one instant raise and clear uninsured at
  once (§5.2); the 1 January sweep; an update at exactly ``due`` comes after the escalation (§6.1);
  resolution by completed + rejected; re-raise as ``#2`` only after the condition lapsed.
* ``burden`` — high_medical_burden by income fraction and by threshold, settlement redelivery,
  reversal clearing the flag and withdrawing its referrals, invalid_transition on a withdrawn
  referral, unknown_referral, an invalid line that must not move the clock, repeat/backward
  updates, resolution, re-arming after a reversal and ``#3``.
* ``chronic_followup`` — chronic_unsigned at ``f + 30 days``, a late contract applied at the clock,
  followup_overdue at ``s + 90 days``, a follow-up clearing it, leaving and re-entering the watched
  categories, escalation.
* ``major_facility`` — ICD-10 normalisation and longest-entry match, once per person/entry/year,
  never cleared, not raised while unwatched; facility_gap raised, cleared, raised again.
* ``deposit_mismatch`` — every deposit reason but not_offered (a unit test covers it), admission
  redelivery, both mismatch kinds opened, cleared and opened again.
* ``invalid`` — error lines: 1-based numbers counting blank lines, ``at`` null before the first
  valid input, then the clock; every kind of invalid field; a late tick.
* ``new_year`` — the sweep covers persons seen *before* 1 January only; several years crossed by
  one input; a late status judged for the year of the clock.
"""

from __future__ import annotations

import io
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from hub.commands.monitor import monitor_command

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
POLICY = SCENARIOS / "monitor_policy.toml"
NAMES = sorted(p.name[: -len(".jsonl")] for p in SCENARIOS.glob("monitor_*.jsonl")
               if not p.name.endswith(".expected.jsonl"))
UNCOMPARED = ("evidence", "detail")


def _by_instant(lines: list[dict[str, Any]]) -> dict[str | None, Counter[str]]:
    out: dict[str | None, Counter[str]] = defaultdict(Counter)
    for line in lines:
        kept = {k: v for k, v in line.items() if k not in UNCOMPARED}
        out[line["at"]][json.dumps(kept, sort_keys=True, ensure_ascii=False)] += 1
    return dict(out)


def run_scenario(name: str) -> list[dict[str, Any]]:
    out, err = io.StringIO(), io.StringIO()
    assert monitor_command(str(POLICY), str(SCENARIOS / f"{name}.jsonl"), out, err) == 0, err.getvalue()
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_every_scenario_has_expectations() -> None:
    assert len(NAMES) >= 7
    for name in NAMES:
        assert (SCENARIOS / f"{name}.expected.jsonl").exists(), name


@pytest.mark.parametrize("name", NAMES)
def test_scenario_matches_hand_derived_outputs(name: str) -> None:
    expected_path = SCENARIOS / f"{name}.expected.jsonl"
    expected = [json.loads(x) for x in expected_path.read_text(encoding="utf-8").splitlines() if x.strip()]
    got = run_scenario(name)
    want, have = _by_instant(expected), _by_instant(got)
    for at in sorted(set(want) | set(have), key=str):
        missing = want.get(at, Counter()) - have.get(at, Counter())
        extra = have.get(at, Counter()) - want.get(at, Counter())
        assert not missing and not extra, f"{name} at {at}:\nmissing {list(missing)}\nextra {list(extra)}"


@pytest.mark.parametrize("name", NAMES)
def test_replaying_a_scenario_twice_gives_identical_lines(name: str) -> None:
    """§5.1: arrival order decides, so a replay of the same inputs gives the same outputs."""
    assert run_scenario(name) == run_scenario(name)
