"""Differential test: ``hub monitor`` (``monitor_command``) against the spec transcription in
``tests/reference/monitor_ref.py`` on random event files and random policies (policy-spec §4–§7).

A seeded generator (deterministic in CI) writes files over a few persons, facilities and
hospitals and a short span of time around a year boundary: late inputs (older than the clock),
several inputs at one instant, inputs placed exactly on (and a nanosecond around) pending due
times, jumps over one or several 1 January sweeps, redelivered admissions and settlements,
referral updates naming ids the run really produced (the reference is fed line by line while the
file is written, and updates pick from the referral ids it emitted so far), and invalid lines of
every §7 kind. Outputs are compared the way the spec compares them: grouped by ``at``, as a
multiset per instant; ``evidence`` and ``detail`` only for presence (their contents are the
project's).

``MONITOR_DIFF_CASES=5000`` runs more cases locally; ``MONITOR_DIFF_SEED`` picks the first seed.
"""

from __future__ import annotations

import io
import json
import os
import random
import tomllib
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from hub.commands.monitor import monitor_command
from hub.policy.loader import load_policy, parse_policy
from hub.policy.model import Policy
from hub.timeutil import format_time, parse_event_time
from tests.reference.monitor_ref import CATEGORIES, OWNER, Reference, fmt, parse_time, run_reference

CASES = int(os.environ.get("MONITOR_DIFF_CASES", "600"))
FIRST_SEED = int(os.environ.get("MONITOR_DIFF_SEED", "0"))
BATCH = 50

PERSONS = ("P1", "P2", "P3", "p:4/x#2")  # tokens are opaque strings: ids embed them verbatim
FACILITIES = ("F1", "F:2/3#1", "P1")  # "P1" as a facility code: persons and facilities are separate namespaces
ROUTE_TYPES = ("a", "b", "c/d", "e:f#1")  # a route type is any non-empty string
HOSPITALS = ("H1", "H2", "H3")
CODES = ("C34.1", "c34", "C 34.2", "I21.0", "I10", "e11.9", "E11", "Z00", "I12", "c16", "A15.3", "F20")
FACILITY_KINDS = ("village_clinic", "township_center", "community_center", "hospital")
DEPARTMENTS = ("health", "insurance", "civil_affairs", "revitalization", "charity")
FLAGS = ("high_medical_burden", "major_disease", "chronic_unsigned", "followup_overdue", "uninsured",
         "facility_gap")
NS = 10**9
DAY_NS = 86400 * NS
OFFSETS = (None, None, None, "Z", "+08:00", "-05:00", "+05:45", "+00:00")
SPEC_FIELDS: dict[str, tuple[str, ...]] = {
    "deposit_decision": ("admission_id", "person", "waived", "reason"),
    "flag": ("flag_id", "flag", "subject", "state", "evidence"),
    "referral": ("referral_id", "flag_id", "department", "referral_type", "state", "due"),
    "escalation": ("referral_id", "department", "due"),
    "mismatch": ("mismatch_id", "kind", "person", "departments", "state"),
    "error": ("line", "reason", "detail"),
}
PRESENCE_ONLY = ("evidence", "detail")


# ----------------------------------------------------------------------------- policies


def _subset(rng: random.Random, items: tuple[str, ...], empty_ok: bool = True) -> list[str]:
    while True:
        out = [x for x in items if rng.random() < 0.5]
        if out or empty_ok:
            return out


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(x) for x in items) + "]"


def random_policy(rng: random.Random) -> str:
    lines = ['[policy]', 'region = "530000"', 'name = "differential"', "effective_from = 2020-01-01"]
    if rng.random() < 0.8:
        lines += ["[deposit_waiver]", f"categories = {_toml_list(_subset(rng, CATEGORIES))}"]
        if rng.random() < 0.5:
            lines.append(f"designated_hospitals = {_toml_list(_subset(rng, HOSPITALS))}")
    if rng.random() < 0.85:
        lines += ["[risk]", f"oop_threshold = {rng.choice([1, 1000, 500000, 1000000])}"]
        if rng.random() < 0.5:
            lines.append(f"oop_income_fraction = {rng.choice([0, 0.5, 0.3333, 1])}")
        if rng.random() < 0.4:
            lines.append(f"watch_general_population = {rng.choice(['true', 'false'])}")
        if rng.random() < 0.4:
            lines.append(f"burden_categories = {_toml_list(_subset(rng, CATEGORIES))}")
        if rng.random() < 0.4:
            lines.append(f"watched_categories = {_toml_list(_subset(rng, CATEGORIES))}")
        if rng.random() < 0.8:
            lines.append(f"major_disease_codes = {_toml_list(_subset(rng, ('C34', 'C34.1', 'i21', 'C16')))}")
        if rng.random() < 0.4:
            lines.append(f"chronic_codes = {_toml_list(_subset(rng, ('I10', 'E11', 'I1', 'A15', 'F20')))}")
        lines.append(f"signing_grace_days = {rng.choice([0, 1, 2, 3, 30])}")
        lines.append(f"followup_days = {rng.choice([1, 2, 3, 90])}")
        if rng.random() < 0.4:
            lines.append(f"gap_facility_kinds = {_toml_list(_subset(rng, FACILITY_KINDS))}")
    roll = rng.random()
    if roll < 0.15:
        lines.append("[referrals]")  # a section with no rows: no referrals at all
    elif roll < 0.5:
        seen: set[tuple[str, str, str]] = set()
        for _ in range(rng.randint(1, 8)):
            row = (rng.choice(FLAGS), rng.choice(DEPARTMENTS), rng.choice(ROUTE_TYPES))
            if row in seen:
                continue
            seen.add(row)
            lines += ["[[referrals.route]]", f'flag = "{row[0]}"', f'department = "{row[1]}"',
                      f'type = "{row[2]}"', f"sla_days = {rng.choice([1, 2, 3, 7])}"]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- times


def format_ns(rng: random.Random, ns: int) -> str:
    """An event time for ``ns`` nanoseconds since the epoch, in a random but exact §5.1 form."""
    secs, frac = divmod(ns, NS)
    off = rng.choice(OFFSETS)
    if off is None or off == "+08:00":
        tz = timezone(timedelta(hours=8))
    elif off == "Z" or off == "+00:00":
        tz = UTC
    else:
        sign = 1 if off[0] == "+" else -1
        tz = timezone(sign * timedelta(hours=int(off[1:3]), minutes=int(off[4:6])))
    local = datetime.fromtimestamp(secs, tz)
    if off is None and frac == 0 and local.hour == local.minute == local.second == 0 and rng.random() < 0.6:
        return local.strftime("%Y-%m-%d")
    text = local.strftime("%Y-%m-%dT%H:%M")
    if local.second or frac or rng.random() < 0.5:
        text += local.strftime(":%S")
        if frac:
            digits = f"{frac:09d}"
            text += "." + (digits.rstrip("0") if rng.random() < 0.7 else digits)
        elif rng.random() < 0.2:
            text += ".000"
    return text + (off or "")


def shanghai_midnight_ns(y: int, m: int, d: int) -> int:
    return int(datetime(y, m, d, tzinfo=timezone(timedelta(hours=8))).timestamp()) * NS


# ----------------------------------------------------------------------------- events


def _invalid_line(rng: random.Random, at: str) -> str:
    person = rng.choice(PERSONS)
    base: list[dict[str, Any]] = [
        {"type": "status", "at": at, "person": person, "source": "civil_affairs", "categories": ["minimum_living"]},
        {"type": "enrollment", "at": at, "person": person, "year": 2024, "enrolled": True},
        {"type": "admission", "at": at, "person": person, "admission_id": "AX", "hospital": "H1", "in_county": True},
        {"type": "settlement", "at": at, "person": person, "discharge_id": "DX", "year": 2024, "patient_fen": 5},
        {"type": "diagnosis", "at": at, "person": person, "code": "I10"},
        {"type": "contract", "at": at, "person": person, "active": True},
        {"type": "payment_default", "at": at, "person": person, "hospital": "H1", "defaulted": True},
        {"type": "facility", "at": at, "facility": "F1", "kind": "village_clinic", "doctors": 0},
        {"type": "referral_update", "at": at, "referral_id": "x", "status": "completed"},
    ]
    roll = rng.randrange(13)
    if roll == 0:
        return rng.choice(["not json", "{", "[]", '"tick"', "1", "null", '{"type": "tick", "at": "2024-01-01", '
                           '"x": NaN}', "[{\"type\": \"tick\", \"at\": \"2024-01-01\"}]"])
    if roll == 1:
        return json.dumps({"type": rng.choice(["ticks", "Status", "", None, 3]), "at": at})
    if roll == 2:
        bad_at = rng.choice(["2024-13-01", "2024-01-01T25:00", "2024-01-01 10:00", "2024-1-1", "2024-01-01T10:00+0800",
                             "2024-01-01T10:00:00.Z", "2024-01-01\n", "２０２４-01-01", "2024-02-30", "2024-01-01T10",
                             "2024-01-01T10:00:60", "2024-01-01T10:00+24:00", 20240101, None, "",
                             "2024-01-01T10:00:00+08:00:00", "2024-01-01t10:00", "2024-01-01T10:00z"])
        obj: dict[str, Any] = rng.choice(base + [{"type": "tick"}])
        obj = dict(obj, at=bad_at)
        if bad_at is None:
            del obj["at"]
        return json.dumps(obj, ensure_ascii=False)
    obj = dict(rng.choice(base))
    fields = [k for k in obj if k not in ("type", "at")]
    if roll == 3:  # missing field
        del obj[rng.choice(fields)]
    elif roll == 4:  # null in a required field
        obj[rng.choice(fields)] = None
    elif roll == 5:  # mistyped field
        key = rng.choice(fields)
        value = obj[key]
        if isinstance(value, bool):
            obj[key] = rng.choice([1, "true", 0])
        elif isinstance(value, int):
            obj[key] = rng.choice([float(value), True, str(value)])
        elif isinstance(value, str):
            obj[key] = rng.choice(["", 1, [value]])
        else:
            obj[key] = "x"
    elif roll == 6:  # unknown category / kind / status
        choice = rng.randrange(6)
        if choice == 0:
            obj = dict(base[0], categories=["minimum_living", "poor"])
        elif choice == 1:
            obj = dict(base[7], kind=rng.choice(["clinic", "Hospital"]))
        elif choice == 2:
            obj = dict(base[8], status=rng.choice(["open", "withdrawn", "done"]))
        elif choice == 3:
            obj = dict(base[1], subsidy_category="poor")
        elif choice == 4:
            obj = dict(base[2], declared_categories=["monitored", "x"])
        else:
            obj = dict(base[0], categories="minimum_living")
    elif roll == 7:  # category of another department
        obj = dict(base[0], source=rng.choice(["civil_affairs", "revitalization"]))
        obj["categories"] = ["monitored"] if obj["source"] == "civil_affairs" else ["extreme_poverty"]
    elif roll == 8:  # negative amounts
        obj = rng.choice([dict(base[3], patient_fen=-5), dict(base[7], doctors=-1),
                          dict(base[0], source="revitalization", categories=[], household_income_fen=-1),
                          dict(base[8], amount_fen=-1)])
    elif roll == 9:  # rejected without a (non-empty) reason
        obj = dict(base[8], status="rejected")
        if rng.random() < 0.5:
            obj["reason"] = rng.choice(["", None, 5])
    elif roll == 10:  # unknown source, empty id
        obj = rng.choice([dict(base[0], source="health"), dict(base[4], code=""), dict(base[2], admission_id=""),
                          dict(base[3], reverses="")])
    elif roll == 11:  # integer given as float / bool
        obj = rng.choice([dict(base[1], year=2024.0), dict(base[7], doctors=True), dict(base[3], patient_fen=5.0)])
    else:  # not an object with a type
        obj = {"at": at, "person": person}
    return json.dumps(obj, ensure_ascii=False)


class Generator:
    """Writes one event file, feeding the reference as it goes so updates can name real referral ids."""

    def __init__(self, rng: random.Random, policy: Policy) -> None:
        self.rng = rng
        self.ref = Reference(policy)
        self.referral_ids: list[str] = []
        self.admission_ids: list[str] = []
        self.discharge_ids: list[str] = []
        self.lines: list[str] = []
        start = rng.choice([(2023, 12, 1), (2023, 12, 20), (2024, 6, 1), (2024, 12, 28), (2023, 2, 20)])
        self.cursor = shanghai_midnight_ns(*start) + rng.choice([0, 0, 9 * 3600 * NS])

    def emit(self, line: str) -> None:
        self.lines.append(line)
        for out in self.ref.feed(line):
            if out["type"] == "referral" and out["referral_id"] not in self.referral_ids:
                self.referral_ids.append(out["referral_id"])

    def next_time(self) -> int:
        rng = self.rng
        roll = rng.random()
        if roll < 0.15:
            return self.cursor  # same instant
        if roll < 0.25:
            return self.cursor - rng.choice([1, NS, 3600 * NS, DAY_NS, 5 * DAY_NS])  # late
        if roll < 0.40 and self.ref.clock is not None:
            dues = sorted(d for d in self.ref._due_times())
            if dues:
                due = dues[0] if rng.random() < 0.6 else rng.choice(dues)
                due_ns = int(due * NS)
                self.cursor = max(self.cursor, due_ns + rng.choice([0, 0, 0, -1, 1, -NS, NS]))
                return self.cursor
        if roll < 0.45:
            year = datetime.fromtimestamp(self.cursor // NS, timezone(timedelta(hours=8))).year
            jump = rng.choice([1, 1, 1, 2, 3])
            self.cursor = max(self.cursor, shanghai_midnight_ns(year + jump, 1, 1) + rng.choice([0, 0, -1, 1, -NS]))
            return self.cursor
        step = rng.choice([1, NS, 3600 * NS, 6 * 3600 * NS, DAY_NS, DAY_NS, 2 * DAY_NS, 3 * DAY_NS, 8 * DAY_NS,
                           31 * DAY_NS])
        self.cursor += step
        return self.cursor

    def _year(self, ns: int) -> int:
        year = datetime.fromtimestamp(ns // NS, timezone(timedelta(hours=8))).year
        return year + self.rng.choice([-1, 0, 0, 0, 0, 0, 1])

    def event(self) -> None:
        rng = self.rng
        ns = self.next_time()
        at = format_ns(rng, ns)
        person = rng.choice(PERSONS)
        kind = rng.choices(
            ["status", "enrollment", "admission", "settlement", "diagnosis", "contract", "followup",
             "payment_default", "facility", "referral_update", "tick", "invalid", "blank"],
            [14, 10, 7, 10, 8, 6, 5, 3, 4, 14, 3, 6, 1])[0]
        obj: dict[str, Any] = {"type": kind, "at": at}
        if kind in ("status", "enrollment", "admission", "settlement", "diagnosis", "contract", "followup",
                    "payment_default"):
            obj["person"] = person
        if kind == "status":
            source = rng.choice(["revitalization", "civil_affairs"])
            obj["source"] = source
            obj["categories"] = _subset(rng, tuple(c for c in CATEGORIES if OWNER[c] == source))
            if source == "revitalization" and rng.random() < 0.5:
                obj["household_income_fen"] = rng.choice([None, 0, 1000, 20000, 1500000, 3000000])
        elif kind == "enrollment":
            obj["year"] = self._year(ns)
            obj["enrolled"] = rng.random() < 0.75
            if rng.random() < 0.5:
                obj["subsidy_category"] = rng.choice([None, *CATEGORIES])
        elif kind == "admission":
            if rng.random() < 0.4:  # enrolled for the admission's year, so the later reasons are reached too
                year = datetime.fromtimestamp(max(ns, self.cursor) // NS, timezone(timedelta(hours=8))).year
                self.emit(json.dumps({"type": "enrollment", "at": at, "person": person, "year": year,
                                      "enrolled": True}))
            if self.admission_ids and rng.random() < 0.25:
                obj["admission_id"] = rng.choice(self.admission_ids)
            else:
                obj["admission_id"] = f"A{len(self.admission_ids) + 1}"
                self.admission_ids.append(obj["admission_id"])
            obj["hospital"] = rng.choice(HOSPITALS)
            obj["in_county"] = rng.random() < 0.6
            if rng.random() < 0.7:
                obj["declared_categories"] = _subset(rng, CATEGORIES) if rng.random() < 0.9 else None
        elif kind == "settlement":
            if self.discharge_ids and rng.random() < 0.35:
                obj["discharge_id"] = rng.choice(self.discharge_ids)
                if rng.random() < 0.6:
                    obj["reverses"] = obj["discharge_id"]
            else:
                obj["discharge_id"] = f"D{len(self.discharge_ids) + 1}"
                self.discharge_ids.append(obj["discharge_id"])
            obj["year"] = self._year(ns)
            fen = rng.choice([0, 100, 5000, 400000, 600000, 1000000, 1200000])
            obj["patient_fen"] = -fen if "reverses" in obj else fen
            if rng.random() < 0.05:
                obj["reverses"] = None
                obj["patient_fen"] = fen
        elif kind == "diagnosis":
            obj["code"] = rng.choice(CODES)
        elif kind == "contract":
            obj["active"] = rng.random() < 0.6
        elif kind == "payment_default":
            obj["hospital"] = rng.choice(HOSPITALS)
            obj["defaulted"] = rng.random() < 0.6
        elif kind == "facility":
            obj["facility"] = rng.choice(FACILITIES)
            obj["kind"] = rng.choice(FACILITY_KINDS)
            obj["doctors"] = rng.choice([0, 0, 1, 2])
        elif kind == "referral_update":
            live = sorted(r.id for r in self.ref.referrals.values() if r.state not in ("completed", "rejected",
                                                                                       "withdrawn"))
            roll = rng.random()
            if live and roll < 0.7:
                obj["referral_id"] = rng.choice(live)
            elif self.referral_ids and roll < 0.93:
                obj["referral_id"] = rng.choice(self.referral_ids)
            else:
                obj["referral_id"] = rng.choice(["nope", "uninsured:P1:2024#1/insurance/enrollment"])
            obj["status"] = rng.choice(["acknowledged", "accepted", "rejected", "completed", "completed"])
            if obj["status"] == "rejected" or rng.random() < 0.2:
                obj["reason"] = "not eligible"
            if obj["status"] == "completed" and rng.random() < 0.4:
                obj["amount_fen"] = rng.choice([None, 0, 12345])
        elif kind == "invalid":
            self.emit(_invalid_line(rng, at))
            return
        elif kind == "blank":
            self.emit(rng.choice(["", "   ", "\t"]))
            return
        if rng.random() < 0.1:
            obj["note"] = "extra fields are ignored"
        items = list(obj.items())
        if rng.random() < 0.3:
            rng.shuffle(items)
        self.emit(json.dumps(dict(items), ensure_ascii=rng.random() < 0.5))


def random_case(seed: int) -> tuple[str, list[str]]:
    rng = random.Random(seed)
    policy_text = random_policy(rng)
    policy = parse_policy(tomllib.loads(policy_text))
    gen = Generator(rng, policy)
    for _ in range(rng.randint(5, 70)):
        gen.event()
    return policy_text, gen.lines


# ----------------------------------------------------------------------------- comparison


def canonical(line: dict[str, Any]) -> str:
    kept: dict[str, Any] = {"type": line.get("type"), "at": line.get("at")}
    for key in SPEC_FIELDS.get(str(line.get("type")), ()):
        if key in PRESENCE_ONLY:
            kept[key] = key in line
        else:
            kept[key] = line.get(key, "<missing>")
    return json.dumps(kept, sort_keys=True, ensure_ascii=False)


def by_instant(lines: list[dict[str, Any]]) -> dict[Any, Counter[str]]:
    out: dict[Any, Counter[str]] = defaultdict(Counter)
    for line in lines:
        out[line.get("at")][canonical(line)] += 1
    return dict(out)


def run_hub(policy_path: Path, events_path: Path) -> list[dict[str, Any]]:
    out, err = io.StringIO(), io.StringIO()
    code = monitor_command(str(policy_path), str(events_path), out, err)
    assert code == 0, err.getvalue()
    return [json.loads(x) for x in out.getvalue().split("\n") if x]


def differences(policy_path: Path, events_path: Path, lines: list[str] | list[str | bytes]) -> list[str]:
    events_path.write_bytes(b"".join((x if isinstance(x, bytes) else x.encode("utf-8", "surrogatepass")) + b"\n"
                                     for x in lines))
    hub = by_instant(run_hub(policy_path, events_path))
    ref = by_instant(run_reference(load_policy(policy_path), lines))
    problems = []
    for at in sorted(set(hub) | set(ref), key=lambda x: (x is not None, x or "")):
        h, r = hub.get(at, Counter()), ref.get(at, Counter())
        if h != r:
            only_hub = sorted((h - r).elements())
            only_ref = sorted((r - h).elements())
            problems.append(f"at {at}:\n  only hub:\n    " + "\n    ".join(only_hub)
                            + "\n  only reference:\n    " + "\n    ".join(only_ref))
    return problems


def shrink(policy_path: Path, events_path: Path, lines: list[str]) -> list[str]:
    """Delta-debug the event file to a small one that still differs (only on failure)."""
    chunk = max(1, len(lines) // 2)
    while chunk >= 1:
        i = 0
        while i < len(lines):
            trial = lines[:i] + lines[i + chunk:]
            if trial and differences(policy_path, events_path, trial):
                lines = trial
            else:
                i += chunk
        chunk //= 2
    return lines


@pytest.mark.parametrize("batch", range(FIRST_SEED, FIRST_SEED + CASES, BATCH))
def test_monitor_matches_reference(batch: int, tmp_path: Path) -> None:
    policy_path, events_path = tmp_path / "policy.toml", tmp_path / "events.jsonl"
    for seed in range(batch, min(batch + BATCH, FIRST_SEED + CASES)):
        policy_text, lines = random_case(seed)
        policy_path.write_text(policy_text, encoding="utf-8")
        if differences(policy_path, events_path, lines):
            small = shrink(policy_path, events_path, lines)
            report = differences(policy_path, events_path, small)
            pytest.fail(f"seed {seed}: hub monitor differs from the reference\n--- policy\n{policy_text}"
                        "--- events\n" + "\n".join(small) + "\n--- differences\n" + "\n".join(report))


def test_generator_exercises_the_rules(tmp_path: Path) -> None:
    """The random files do reach every output type and state (else the comparison proves little)."""
    seen: Counter[str] = Counter()
    for seed in range(60):
        policy_text, lines = random_case(seed)
        policy_path = tmp_path / "policy.toml"
        policy_path.write_text(policy_text, encoding="utf-8")
        for line in run_reference(load_policy(policy_path), lines):
            seen[line["type"]] += 1
            if "state" in line:
                seen[f"{line['type']}:{line['state']}"] += 1
            if line["type"] == "error":
                seen[f"error:{line['reason']}"] += 1
    wanted = ["deposit_decision", "escalation", "flag:raised", "flag:referred", "flag:resolved", "flag:cleared",
              "referral:open", "referral:acknowledged", "referral:accepted", "referral:rejected",
              "referral:completed", "referral:withdrawn", "mismatch:open", "mismatch:cleared",
              "error:invalid_input", "error:unknown_referral", "error:invalid_transition"]
    missing = [w for w in wanted if not seen[w]]
    assert not missing, (missing, seen)


EDGE_POLICY = """[policy]
region = "530000"
name = "edge cases"
effective_from = 2020-01-01
[deposit_waiver]
categories = ["monitored"]
[risk]
oop_threshold = 1000
signing_grace_days = 30
gap_facility_kinds = ["township_center"]
[[referrals.route]]
flag = "facility_gap"
department = "health"
type = "staffing/clinic"
sla_days = 30
[[referrals.route]]
flag = "uninsured"
department = "insurance"
type = "enrollment"
sla_days = 15
"""
_S = '{"type": "status", "at": "2024-01-05", "person": "P1", "source": "revitalization", "categories": ["monitored"]}'
EDGE_FILES: dict[str, list[str | bytes]] = {
    # each was a discrepancy once: the reference reading is the spec's (see the module doc)
    "trailing newline in a time": ['{"type": "tick", "at": "2024-01-01\\n"}', _S],
    "non-ASCII digits in a time": ['{"type": "tick", "at": "\uff12\uff10\uff12\uff14-01-01"}', _S],
    "NaN is not JSON": ['{"type": "tick", "at": "2024-01-01", "x": NaN}', _S],
    "lone surrogate": ['{"type": "diagnosis", "at": "2024-01-01", "person": "\\ud800", "code": "C34"}', _S],
    "not UTF-8": [b"\xff\xfe", _S],
    "time beyond year 9999 in Shanghai": ['{"type": "tick", "at": "9999-12-31T23:00-05:00"}', _S],
    "full precision at a due time": [
        '{"facility": "F1", "type": "facility", "doctors": 0, "at": "2027-01-06T21:44:59.999999999+05:45", '
        '"kind": "township_center"}',
        '{"type": "diagnosis", "at": "2027-02-05T21:44:59.999999998+05:45", "person": "P2", "code": "Z00"}',
        '{"type": "tick", "at": "2027-02-05T23:59:59.999999999"}',
    ],
    "route type holding a slash": [
        '{"type": "facility", "at": "2024-01-01", "facility": "F/1", "kind": "township_center", "doctors": 0}',
        '{"type": "referral_update", "at": "2024-01-02", "referral_id": "facility_gap:F/1#1/health/staffing/clinic", '
        '"status": "accepted"}',
        '{"type": "referral_update", "at": "2024-01-03", "referral_id": "facility_gap:F/1#1/health/staffing/clinic", '
        '"status": "completed"}',
    ],
    "a mistyped reason on an acknowledgement": [
        _S, '{"type": "referral_update", "at": "2024-01-06", "referral_id": "uninsured:P1:2024#1/insurance/enrollment",'
        ' "status": "acknowledged", "reason": 5}'],
}


@pytest.mark.parametrize("name", sorted(EDGE_FILES))
def test_edge_files(name: str, tmp_path: Path) -> None:
    policy_path, events_path = tmp_path / "policy.toml", tmp_path / "events.jsonl"
    policy_path.write_text(EDGE_POLICY, encoding="utf-8")
    assert differences(policy_path, events_path, EDGE_FILES[name]) == []


def test_event_times_compare_at_full_precision() -> None:
    """§5.1 "Times are compared at full precision": hub.timeutil agrees with exact arithmetic."""
    rng = random.Random(7)
    base = shanghai_midnight_ns(2024, 12, 31)
    times = [base + rng.choice([0, 1, 999, 1000, 10**6, NS - 1, DAY_NS]) * rng.choice([1, -1]) + rng.randrange(3)
             for _ in range(150)]
    texts = [format_ns(rng, ns) for ns in times]
    parsed = [parse_event_time(t) for t in texts]
    exact = [parse_time(t) for t in texts]
    for i in range(len(texts)):
        assert format_time(parsed[i]) == fmt(exact[i])
        later = parsed[i] + timedelta(days=1)
        for j in range(len(texts)):
            assert (parsed[i] < parsed[j]) == (exact[i] < exact[j]), (texts[i], texts[j])
            assert (parsed[i] == parsed[j]) == (exact[i] == exact[j]), (texts[i], texts[j])
            assert (later <= parsed[j]) == (exact[i] + 86400 <= exact[j]), (texts[i], texts[j])
