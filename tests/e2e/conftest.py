"""End-to-end fixtures: every scenario file goes through ``hub replay`` once, its outputs grouped by topic.

How a scenario runs: ``python -m hub.cli replay tests/scenarios/replay_NAME.jsonl --dump OUT`` — the real
command. It puts each line on its topic as a producer would, merges each task's topic-partitions by event
time and applies the person processor's rules (policy-spec §8), with no broker: a replay takes about a
second, so the replays the selected tests need start as soon as collection is over, all at once, and a
module-scoped fixture waits for its own. That the live worker gives the same outputs as ``hub replay``
whatever the delivery is ``test_stream_equals_replay.py``'s business.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hub.runtime import encode_input
from hub.topics import DEAD_LETTERS

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "tests" / "scenarios"
REPLAY_TIMEOUT = 240.0
"""Seconds a replay may take, start-up included; generous because other test runs share the machine."""
WALL_CLOCK_FIELDS = {DEAD_LETTERS: ("failed_at", "occurred_at", "original")}
"""What differs between two replays: an edge dead letter (a line rejected before it reached a topic) is
stamped with the wall clock, and its original is encrypted with a random nonce. Processor dead letters
are event-time only; everything else is."""


# -- scenario files ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScenarioLine:
    """One non-blank line of a scenario file, and whether ``hub replay`` can put it on its topic."""

    number: int
    raw: str
    topic: str
    value: dict[str, Any]
    accepted: bool


def read_scenario(name: str) -> list[ScenarioLine]:
    """The lines of ``tests/scenarios/NAME.jsonl`` (JSON lines ``{"topic", "value"}``), blank lines skipped."""
    lines: list[ScenarioLine] = []
    for number, raw in enumerate((SCENARIOS / f"{name}.jsonl").read_text(encoding="utf-8").splitlines(), 1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
            topic, value = obj["topic"], obj["value"]
        except (ValueError, TypeError, KeyError):  # not a {"topic", "value"} object at all
            lines.append(ScenarioLine(number, raw, "", {}, False))
            continue
        try:
            encode_input(topic, value)
            accepted = True
        except Exception:  # exactly what hub replay rejects to the dead letters
            accepted = False
        lines.append(ScenarioLine(number, raw, topic, value, accepted))
    return lines


# -- one replay ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplaySpec:
    """One ``hub replay`` run of a scenario file; ``label`` tells apart two otherwise identical runs."""

    scenario: str
    label: str = "first"

    def environment(self) -> dict[str, str]:
        """The replay's environment: the bundled policies and Mengzi's monitoring rules."""
        env = {k: v for k, v in os.environ.items() if k != "HUB_POLICY_DIR"}
        env["HUB_REGION"] = "532503"
        return env


@dataclass
class Replay:
    """The dump of one replay: rows ``{topic, partition, offset, key, schema, value}`` grouped by topic.

    Rows of a topic keep the dump's order (partition, then offset), so the outputs of one key, which
    share a partition, are in the order the worker produced them.
    """

    spec: ReplaySpec
    returncode: int
    log: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def by_topic(self) -> dict[str, list[dict[str, Any]]]:
        grouped: dict[str, list[dict[str, Any]]] = {}
        for row in self.rows:
            grouped.setdefault(row["topic"], []).append(row)
        return grouped

    def values(self, topic: str, **match: Any) -> list[dict[str, Any]]:
        """Values on ``topic`` whose fields equal ``match`` (e.g. ``person_token="p1"``), in dump order."""
        return [r["value"] for r in self.by_topic.get(topic, [])
                if all(r["value"].get(k) == v for k, v in match.items())]

    def one(self, topic: str, **match: Any) -> dict[str, Any]:
        """The single value on ``topic`` matching ``match``; fails with what was found otherwise."""
        found = self.values(topic, **match)
        assert len(found) == 1, f"expected one {topic} record with {match}, found {len(found)}: {found}"
        return found[0]

    def event_ids(self, topic: str, **match: Any) -> list[str]:
        return [v["event_id"] for v in self.values(topic, **match)]

    def comparable(self) -> list[tuple[str, str | None, str]]:
        """(topic, key, value without wall-clock fields) of every row: what two replays must share."""
        out = []
        for row in self.rows:
            value = {k: v for k, v in row["value"].items() if k not in WALL_CLOCK_FIELDS.get(row["topic"], ())}
            out.append((row["topic"], row["key"], json.dumps(value, sort_keys=True, ensure_ascii=False)))
        return out


class ReplayRun:
    """A ``hub replay`` child process and where its dump and log go."""

    def __init__(self, spec: ReplaySpec, workdir: Path) -> None:
        self.spec = spec
        slug = f"{spec.scenario}-{spec.label}".replace(" ", "_")
        self.dump = workdir / f"{slug}.out.jsonl"
        self.log_path = workdir / f"{slug}.log"
        cmd = [sys.executable, "-m", "hub.cli", "replay", str(SCENARIOS / f"{spec.scenario}.jsonl"),
               "--dump", str(self.dump)]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=spec.environment(), stdout=log, stderr=subprocess.STDOUT)
        self.started = time.monotonic()
        self._result: Replay | None = None

    def result(self) -> Replay:
        """Wait for the replay (bounded) and read its dump."""
        if self._result is None:
            try:
                returncode = self.proc.wait(max(REPLAY_TIMEOUT - (time.monotonic() - self.started), 1.0))
            except subprocess.TimeoutExpired:
                self.stop()
                pytest.fail(f"hub replay of {self.spec.scenario} took more than {REPLAY_TIMEOUT:.0f} s; "
                            f"log: {self.log_path.read_text(errors='replace')[-3000:]}")
            rows = []
            if returncode == 0 and self.dump.exists():
                rows = [json.loads(line) for line in self.dump.read_text(encoding="utf-8").splitlines() if line]
            self._result = Replay(self.spec, returncode, self.log_path.read_text(errors="replace"), rows)
        return self._result

    def stop(self) -> None:
        """SIGTERM (the command then stops its worker and broker), SIGKILL if it does not go."""
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


class ReplayPool:
    """Every replay of the session, started once and shared by the modules that read it."""

    def __init__(self) -> None:
        self.workdir: Path | None = None  # made with the first replay, removed by close()
        self.runs: dict[ReplaySpec, ReplayRun] = {}

    def start(self, spec: ReplaySpec) -> ReplayRun:
        if spec not in self.runs:
            if self.workdir is None:
                self.workdir = Path(tempfile.mkdtemp(prefix="hub-e2e-replays-"))
            self.runs[spec] = ReplayRun(spec, self.workdir)
        return self.runs[spec]

    def result(self, spec: ReplaySpec, *, check: bool = True) -> Replay:
        """The replay of ``spec`` (started now if nobody asked for it yet); ``check`` fails on a non-zero exit."""
        replay = self.start(spec).result()
        if check and replay.returncode != 0:
            pytest.fail(f"hub replay of {spec.scenario} exited with {replay.returncode}:\n{replay.log[-4000:]}")
        return replay

    def close(self) -> None:
        for run in self.runs.values():
            run.stop()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


POOL = ReplayPool()

REPLAYS: dict[str, ReplaySpec] = {
    "settlement_replay": ReplaySpec("replay_settlement"),
    "risk_replay": ReplaySpec("replay_risk"),
    "risk_replay_again": ReplaySpec("replay_risk", label="again"),
    "not_json_replay": ReplaySpec("replay_not_json"),
}
"""Fixture name → the replay it returns; the replays of the selected tests start right after collection."""


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the replays the selected tests will ask for, all at once (they run while other tests do)."""
    if session.config.option.collectonly:
        return
    wanted = {name for item in session.items for name in getattr(item, "fixturenames", ()) if name in REPLAYS}
    for name in sorted(wanted):
        POOL.start(REPLAYS[name])


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Never leave a replay (and its broker and worker) behind, whatever happened."""
    POOL.close()


# -- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def replay_pool() -> Iterator[ReplayPool]:
    yield POOL


@pytest.fixture(scope="module")
def settlement_replay(replay_pool: ReplayPool) -> Replay:
    """``tests/scenarios/replay_settlement.jsonl`` through ``hub replay`` (settlement §3, deposit waiver §4)."""
    return replay_pool.result(REPLAYS["settlement_replay"])


@pytest.fixture(scope="module")
def risk_replay(replay_pool: ReplayPool) -> Replay:
    """``tests/scenarios/replay_risk.jsonl`` through ``hub replay`` (flags §5, referrals and mismatches §6)."""
    return replay_pool.result(REPLAYS["risk_replay"])


@pytest.fixture(scope="module")
def risk_replay_again(replay_pool: ReplayPool) -> Replay:
    """A second, independent replay of the risk scenario (determinism)."""
    return replay_pool.result(REPLAYS["risk_replay_again"])


@pytest.fixture(scope="module")
def not_json_replay(replay_pool: ReplayPool) -> Replay:
    """``tests/scenarios/replay_not_json.jsonl``: lines that are not ``{"topic", "value"}`` objects."""
    return replay_pool.result(REPLAYS["not_json_replay"], check=False)
