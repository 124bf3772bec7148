"""Differential test: ``hub settle`` against an independent transcription of policy-spec §2–§3.

``reference_settle.py`` (next to this file) was written from the spec text alone. Hypothesis draws
random policies (every section optional, every defaulted key present or absent), persons and
sequences of discharge lines — dates and timestamps around year ends and effective dates,
redeliveries identical and conflicting, reversals of known, unknown and reversed ids, and every
kind of invalid line — and every output line of ``settle_command`` must agree with the reference
on each field the spec requires. A few policy load errors check the exit code and the message.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.commands.settle import settle_command

sys.path.insert(0, str(Path(__file__).parent))
from reference_settle import FEN_FIELDS, reference_settle, shanghai_day  # noqa: E402

CATEGORIES = ("poverty_alleviated", "monitored", "minimum_living", "extreme_poverty")
LEVELS = ("L1", "L2", "L3")
EXAMPLES = int(os.environ.get("HUB_DIFFERENTIAL_EXAMPLES", "300"))
REGIONS = ("530000", "530100", "530102", "450100", "450000")
PERSON_REGIONS = ("530000", "530100", "530102", "530199", "530200", "450100", "450102", "450000")
IDS = tuple(f"d{i}" for i in range(6))


# ------------------------------------------------------------------ strategies: policy


def ratio_text(bp: int, style: int) -> str:
    """A TOML number for ``bp`` basis points, written in one of several equivalent ways."""
    value = Decimal(bp) / Decimal(10000)
    if value == value.to_integral_value() and style == 0:
        return str(int(value))  # TOML integer: 1, 0, -1
    text = format(value.normalize(), "f")
    return text if "." in text else text + ".0"


@st.composite
def ratios(draw: st.DrawFn, low: int = 0) -> str:
    bp = draw(st.one_of(
        st.integers(low, 10000),
        st.sampled_from([v for v in (0, 1, 5000, 6000, 7500, 9000, 9999, 10000, -1000, -10000) if v >= low]),
    ))
    return ratio_text(bp, draw(st.integers(0, 1)))


def amounts(big: int) -> st.SearchStrategy[int]:
    return st.one_of(st.integers(0, big), st.sampled_from([0, 1, 20000, 50000, 100000, 1500000]))


@dataclass
class PolicyDraw:
    text: str
    region: str
    effective_from: date
    effective_to: date | None


@st.composite
def category_lists(draw: st.DrawFn, min_size: int = 0) -> list[str]:
    return draw(st.lists(st.sampled_from(CATEGORIES), min_size=min_size, max_size=4, unique=True))


@st.composite
def policies(draw: st.DrawFn) -> PolicyDraw:
    region = draw(st.sampled_from(REGIONS))
    eff_from = draw(st.dates(date(2023, 1, 1), date(2025, 6, 30)))
    eff_to = draw(st.none() | st.dates(eff_from, date(2026, 12, 31)))
    lines = ["[policy]", f'region = "{region}"', 'name = "Generated"', f"effective_from = {eff_from.isoformat()}"]
    if eff_to is not None:
        lines.append(f"effective_to = {eff_to.isoformat()}")
    if draw(st.booleans()):
        lines.append(f"illustrative = {str(draw(st.booleans())).lower()}")

    def maybe(key: str, value: st.SearchStrategy[str]) -> None:
        if draw(st.booleans()):
            lines.append(f"{key} = {draw(value)}")

    cats = category_lists().map(json.dumps)
    present = st.sampled_from([True, True, True, False])
    if draw(present):
        lines.append("\n[basic]")
        ded = {lv: draw(amounts(200000)) for lv in LEVELS}
        lines.append("deductible = { " + ", ".join(f"{k} = {v}" for k, v in ded.items()) + " }")
        lines.append("ratio = { " + ", ".join(f"{lv} = {draw(ratios())}" for lv in LEVELS) + " }")
        lines.append(f"annual_cap = {draw(amounts(20000000))}")
        maybe("out_of_county_unreferred_delta", ratios(low=-10000))
        maybe("special_categories", cats)
        maybe("special_ratio_bonus", ratios())
        maybe("special_bonus_scope", st.sampled_from(['"all"', '"in_county_or_referred"']))
        maybe("special_deductible_factor", ratios())
    if draw(present):
        lines.append("\n[critical]")
        lines.append(f"deductible = {draw(amounts(3000000))}")
        bounds = sorted(draw(st.sets(st.integers(1, 12000000), max_size=3)))
        tiers = [f"{{ up_to = {b}, ratio = {draw(ratios())} }}" for b in bounds]
        tiers.append(f"{{ ratio = {draw(ratios())} }}")
        lines.append("tiers = [ " + ", ".join(tiers) + " ]")
        lines.append(f"annual_cap = {draw(amounts(40000000))}")
        maybe("special_categories", cats)
        maybe("special_deductible_factor", ratios())
        maybe("special_ratio_bonus", ratios())
        maybe("special_no_cap", st.sampled_from(["true", "false"]))
    if draw(present):
        lines.append("\n[assistance]")
        lines.append(f"annual_cap = {draw(amounts(6000000))}")
        chosen = draw(category_lists())
        entries = {c: f"{{ ratio = {draw(ratios())}, deductible = {draw(amounts(300000))} }}" for c in chosen}
        if entries and draw(st.booleans()):
            lines.append("[assistance.categories]")
            lines.extend(f"{c} = {e}" for c, e in entries.items())
        else:
            lines.extend(f"categories.{c} = {e}" for c, e in entries.items())
    if draw(present):
        lines.append("\n[top_up]")
        lines.append(f"target_ratio = {draw(ratios())}")
        lines.append(f"categories = {json.dumps(draw(category_lists()))}")
        maybe("base", st.sampled_from(['"total"', '"in_policy"']))
    if draw(st.booleans()):
        lines.append("\n[deposit_waiver]")
        lines.append(f"categories = {json.dumps(draw(category_lists()))}")
        maybe("designated_hospitals", st.sampled_from(["[]", '["H1", "H2"]']))
    if draw(st.booleans()):
        lines.append("\n[risk]")
        lines.append(f"oop_threshold = {draw(st.integers(1, 2000000))}")
    return PolicyDraw("\n".join(lines) + "\n", region, eff_from, eff_to)


# ------------------------------------------------------------------ strategies: discharges


OFFSETS = ("", "", "Z", "+08:00", "+00:00", "-05:00", "+14:00", "-12:00", "+05:45", "-00:30")
TIMES = ("00:00", "00:00:00", "07:59:59", "08:00", "15:59:59", "15:59:59.999999999", "16:00:00", "16:00",
         "23:59:59", "23:59:59.5", "12:30:00.123")


@st.composite
def discharge_times(draw: st.DrawFn, pol: PolicyDraw) -> str:
    anchors = [date(y, 12, 31) for y in (2022, 2023, 2024, 2025, 2026)]
    anchors += [date(y, 1, 1) for y in (2023, 2024, 2025, 2026)]
    anchors += [pol.effective_from, pol.effective_from - timedelta(days=1)]
    if pol.effective_to is not None:
        anchors += [pol.effective_to, pol.effective_to + timedelta(days=1)]
    last = pol.effective_to or date(2026, 12, 31)
    inside = st.dates(pol.effective_from, last)
    day = draw(st.one_of(st.sampled_from(anchors), st.dates(date(2022, 12, 1), date(2027, 1, 31)), inside, inside))
    if draw(st.integers(0, 2)) == 0:
        return day.isoformat()
    hhmm = draw(st.sampled_from(TIMES) | st.times().map(lambda t: t.isoformat()))
    return f"{day.isoformat()}T{hhmm}{draw(st.sampled_from(OFFSETS))}"


@st.composite
def discharge_objects(draw: st.DrawFn, pol: PolicyDraw, did: str | None = None) -> dict[str, Any]:
    total = draw(st.one_of(
        st.just(0), st.integers(1, 300000), st.integers(0, 5000000), st.integers(5000000, 60000000),
    ))
    oop = draw(st.one_of(st.just(0), st.just(total), st.integers(0, total)))
    return {
        "discharge_id": did if did is not None else draw(st.sampled_from(IDS)),
        "discharged_at": draw(discharge_times(pol)),
        "level": draw(st.sampled_from(LEVELS)),
        "in_county": draw(st.booleans()),
        "referred": draw(st.booleans()),
        "total_fen": total,
        "out_of_policy_fen": oop,
    }


INVALID_EDITS: tuple[tuple[str, Any], ...] = (
    ("total_fen", True), ("total_fen", 100.0), ("total_fen", "100"), ("total_fen", -1), ("total_fen", None),
    ("out_of_policy_fen", False), ("out_of_policy_fen", 1.5), ("out_of_policy_fen", -5),
    ("level", "L4"), ("level", "l1"), ("level", ""), ("level", 1),
    ("in_county", 1), ("in_county", "true"), ("referred", 0), ("referred", None),
    ("discharged_at", "2024-02-30"), ("discharged_at", "2024/03/05"), ("discharged_at", 20240305),
    ("discharged_at", "2024-03-05T25:00"), ("discharged_at", "2024-03-05T10:00+24:00"), ("discharged_at", ""),
    ("discharged_at", "2024-03-05\n"), ("discharged_at", "2024-03-05T10:00Z\n"), ("discharged_at", "\uff12024-03-05"),
    ("discharged_at", "2024-03-05T10:00:60"), ("discharged_at", "2024-03-05 10:00"), ("discharged_at", "2024-3-5"),
    ("discharged_at", "9999-12-31T23:00-05:00"), ("discharged_at", "0001-01-01T00:00+09:00"),
    ("discharge_id", 7), ("discharge_id", None),
)


@st.composite
def input_lines(draw: st.DrawFn, pol: PolicyDraw) -> list[str]:
    lines: list[str] = []
    sent: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(1, 22))):
        kind = draw(st.sampled_from(
            ["new"] * 6
            + ["redeliver", "conflict", "reverse", "reverse", "invalid", "missing", "garbage", "blank", "raw"]
        ))
        if kind == "new" or (kind in ("redeliver", "conflict") and not sent):
            obj = draw(discharge_objects(pol))
            sent.append(obj)
            lines.append(json.dumps(obj))
        elif kind == "redeliver":
            lines.append(json.dumps(draw(st.sampled_from(sent))))
        elif kind == "conflict":
            first = draw(st.sampled_from(sent))
            lines.append(json.dumps(draw(discharge_objects(pol, first["discharge_id"]))))
        elif kind == "reverse":
            target = draw(st.sampled_from([o["discharge_id"] for o in sent] + ["nope"]) if sent
                          else st.sampled_from(IDS))
            lines.append(json.dumps({"reverses": target}))
        elif kind == "invalid":
            obj = dict(draw(discharge_objects(pol)))
            key, value = draw(st.sampled_from(INVALID_EDITS))
            obj[key] = value
            lines.append(json.dumps(obj))
        elif kind == "missing":
            obj = dict(draw(discharge_objects(pol)))
            del obj[draw(st.sampled_from(sorted(obj)))]
            lines.append(json.dumps(obj))
        elif kind == "garbage":
            lines.append(draw(st.sampled_from([
                "{", "not json", "[1, 2]", "42", "null", '"d1"', '{"reverses": 5}',
                json.dumps({"discharge_id": "d1", "discharged_at": "2024-03-05", "level": "L1",
                            "in_county": True, "referred": False, "total_fen": 100, "out_of_policy_fen": 101}),
            ])))
        elif kind == "raw":
            # ids holding characters str.splitlines() would split at, written unescaped (valid JSON)
            did = draw(st.sampled_from(["d\u2028x", "d\u2029x", "d\x85x", "d\u3000x", "\u5f20\u4e09"]))
            obj = draw(discharge_objects(pol, did))
            sent.append(obj)
            lines.append(json.dumps(obj, ensure_ascii=False))
        else:
            lines.append(draw(st.sampled_from(["", "   ", "\t"])))
    return lines


@st.composite
def persons(draw: st.DrawFn, pol: PolicyDraw | None = None) -> dict[str, Any]:
    years = st.sets(st.integers(2022, 2027), max_size=6)
    person: dict[str, Any] = {
        "categories": draw(category_lists()),
        "enrolled_years": sorted(draw(years | st.just({2022, 2023, 2024, 2025, 2026, 2027}))),
    }
    if draw(st.booleans()):
        regions = [r for r in PERSON_REGIONS if pol is None or r[:2] == pol.region[:2]]
        person["insured_region"] = draw(st.sampled_from(regions) | st.sampled_from(PERSON_REGIONS))
    return person


# ------------------------------------------------------------------ running both


def run_settle(policy_text: str, person: dict[str, Any], lines: list[str]) -> tuple[int, str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "policy.toml").write_text(policy_text, encoding="utf-8")
        (d / "person.json").write_text(json.dumps(person), encoding="utf-8")
        (d / "discharges.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        out, err = io.StringIO(), io.StringIO()
        rc = settle_command(str(d / "policy.toml"), str(d / "person.json"), str(d / "discharges.jsonl"), out, err)
        return rc, out.getvalue(), err.getvalue()


def compare(policy_text: str, person: dict[str, Any], lines: list[str]) -> None:
    rc, out, err = run_settle(policy_text, person, lines)
    assert rc == 0, err
    got = [json.loads(x) for x in out.split("\n") if x.strip()]
    want = reference_settle(policy_text, person, lines)
    assert len(got) == len(want), (got, want)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        where = f"output {i}: input {[x for x in lines if x.strip()][i]!r}\n got  {g}\n want {w}"
        if "error" in w:
            assert g.get("error") == w["error"], where
            assert "detail" in g, where
            if "reverses" in w:
                assert g.get("reverses") == w["reverses"], where
                assert "discharge_id" not in g, where
            else:
                assert "discharge_id" in g and g["discharge_id"] == w["discharge_id"], where
            continue
        assert "error" not in g, where
        for key, value in w.items():
            assert key in g and g[key] == value and type(g[key]) is type(value), where
        if "reverses" not in w:
            assert "reverses" not in g, where


# ------------------------------------------------------------------ tests


SPEC_POLICY = (Path(__file__).parent / "fixtures" / "spec_example_policy.toml").read_text(encoding="utf-8")


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_settle_matches_reference(data: st.DataObject) -> None:
    pol = data.draw(policies())
    person = data.draw(persons(pol))
    lines = data.draw(input_lines(pol))
    compare(pol.text, person, lines)


@settings(max_examples=max(EXAMPLES // 3, 20), deadline=None)
@given(person=persons(), data=st.data())
def test_spec_example_policy_matches_reference(person: dict[str, Any], data: st.DataObject) -> None:
    pol = PolicyDraw(SPEC_POLICY, "530000", date(2021, 8, 16), date(2025, 12, 31))
    compare(SPEC_POLICY, person, data.draw(input_lines(pol)))


def test_spec_example_line() -> None:
    lines = [json.dumps({"discharge_id": "d1", "discharged_at": "2024-03-05", "level": "L2", "in_county": True,
                         "referred": False, "total_fen": 1234500, "out_of_policy_fen": 100000}),
             json.dumps({"reverses": "d1"})]
    compare(SPEC_POLICY, {"categories": ["poverty_alleviated"], "enrolled_years": [2024]}, lines)


def test_timestamp_year_edges() -> None:
    """The decided point's own example, and offsets either side of the Shanghai midnight."""
    assert shanghai_day("2024-12-31T17:00:00Z") == date(2025, 1, 1)
    assert shanghai_day("2024-12-31T15:59:59.999999999Z") == date(2024, 12, 31)
    assert shanghai_day("2025-01-01T07:59:59+14:00") == date(2025, 1, 1)
    assert shanghai_day("2025-01-01T00:30-00:30") == date(2025, 1, 1)
    policy = "[policy]\nregion = \"530000\"\nname = \"x\"\neffective_from = 2020-01-01\n[basic]\n" \
             "deductible = { L1 = 0, L2 = 0, L3 = 0 }\nratio = { L1 = 0.5, L2 = 0.5, L3 = 0.5 }\nannual_cap = 100\n"
    lines = [json.dumps({"discharge_id": f"d{i}", "discharged_at": at, "level": "L1", "in_county": True,
                         "referred": False, "total_fen": 1000, "out_of_policy_fen": 0})
             for i, at in enumerate(["2024-12-31T17:00:00Z", "2024-12-31T15:59:59.999999999Z",
                                     "2024-12-31T23:59:59", "2025-01-01", "2024-12-31T16:00:00Z"])]
    compare(policy, {"categories": [], "enrolled_years": [2024, 2025]}, lines)
    rc, out, _ = run_settle(policy, {"categories": [], "enrolled_years": [2024, 2025]}, lines)
    assert [json.loads(x)["basic_fen"] for x in out.split("\n") if x] == [100, 100, 0, 0, 0]


def test_discrepancies_found_by_this_test() -> None:
    """Each was a difference between ``hub settle`` and the reference (now fixed in the hub).

    * ``discharged_at`` with a trailing newline or non-ASCII digits was accepted (``$`` / ``\\d``);
    * a timestamp whose Shanghai date leaves years 1–9999 crashed the command (OverflowError);
    * the input was split with ``str.splitlines()``, so a raw U+2028/U+0085 inside a JSON string
      made one line into two outputs.
    """
    base = {"discharge_id": "d1", "discharged_at": "2024-03-05", "level": "L2", "in_county": True,
            "referred": False, "total_fen": 1234500, "out_of_policy_fen": 100000}
    lines = [json.dumps(dict(base, discharge_id=f"t{i}", discharged_at=at))
             for i, at in enumerate(["2024-03-05\n", "\uff12\uff10\uff12\uff14-03-05", "9999-12-31T23:00-05:00",
                                     "0001-01-01T00:00+09:00", "2024-03-05T10:00+08:00"])]
    lines += [json.dumps(dict(base, discharge_id=f"a{sep}b"), ensure_ascii=False) for sep in "\u2028\u2029\x85"]
    policy = SPEC_POLICY.replace("effective_to = 2025-12-31\n", "").replace("effective_from = 2021-08-16",
                                                                             "effective_from = 0001-01-01")
    person = {"categories": ["poverty_alleviated"], "enrolled_years": [2024]}
    compare(policy, person, lines)
    rc, out, _ = run_settle(policy, person, lines)
    got = [json.loads(x) for x in out.split("\n") if x]
    assert [g.get("error") for g in got] == ["invalid_input"] * 4 + [None] * 4


def test_a_line_that_is_not_utf8_is_one_invalid_input() -> None:
    """Not UTF-8 is "not JSON": that line yields invalid_input, the others settle, exit 0 (it is no load error)."""
    good = json.dumps({"discharge_id": "d1", "discharged_at": "2024-03-05", "level": "L2", "in_county": True,
                       "referred": False, "total_fen": 1234500, "out_of_policy_fen": 100000})
    person = {"categories": ["poverty_alleviated"], "enrolled_years": [2024]}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "p.toml").write_text(SPEC_POLICY, encoding="utf-8")
        (d / "person.json").write_text(json.dumps(person), encoding="utf-8")
        (d / "in.jsonl").write_bytes(b'{"discharge_id": "\xff"}\n' + good.encode() + b"\r\n")
        out, err = io.StringIO(), io.StringIO()
        rc = settle_command(str(d / "p.toml"), str(d / "person.json"), str(d / "in.jsonl"), out, err)
    assert rc == 0, err.getvalue()
    got = [json.loads(x) for x in out.getvalue().split("\n") if x]
    want = [{"discharge_id": None, "error": "invalid_input"}, *reference_settle(SPEC_POLICY, person, [good])]
    assert len(got) == 2
    assert got[0]["discharge_id"] is None and got[0]["error"] == "invalid_input" and "detail" in got[0]
    assert all(got[1][k] == v for k, v in want[1].items())


# ------------------------------------------------------------------ load errors


HEAD = '[policy]\nregion = "530000"\nname = "x"\neffective_from = 2024-01-01\n'
BASIC = "[basic]\ndeductible = { L1 = 1, L2 = 2, L3 = 3 }\nratio = { L1 = 0.9, L2 = 0.75, L3 = 0.6 }\nannual_cap = 10\n"
CRIT = "[critical]\ndeductible = 100\nannual_cap = 100\n"

LOAD_ERRORS: list[tuple[str, str, str]] = [
    # (file text, key the message must name, a word of the problem)
    (HEAD + "colour = 1\n", "colour", "unknown"),
    (HEAD + "[bonus]\nx = 1\n", "bonus", "unknown"),
    (HEAD + BASIC + "extra = 1\n", "basic.extra", "unknown"),
    ('[policy]\nregion = "530000"\neffective_from = 2024-01-01\n', "name", "missing"),
    ('[policy]\nregion = "530000"\nname = "x"\n', "effective_from", "missing"),
    (HEAD + "[basic]\ndeductible = { L1 = 1, L2 = 2 }\nratio = { L1 = 0.9, L2 = 0.75, L3 = 0.6 }\nannual_cap = 1\n",
     "L3", "missing"),
    (HEAD + "[basic]\ndeductible = { L1 = 1, L2 = 2, L3 = 3 }\nratio = { L1 = 0.9, L2 = 0.75, L3 = 0.6 }\n",
     "annual_cap", "missing"),
    (HEAD + CRIT.replace("annual_cap = 100\n", ""), "tiers", "missing"),
    (HEAD + "[assistance]\n", "annual_cap", "missing"),
    (HEAD + "[top_up]\ntarget_ratio = 0.9\n", "categories", "missing"),
    (HEAD + "[top_up]\ncategories = []\n", "target_ratio", "missing"),
    (HEAD + "[deposit_waiver]\ndesignated_hospitals = []\n", "categories", "missing"),
    (HEAD + BASIC.replace("annual_cap = 10", "annual_cap = -10"), "annual_cap", "negative"),
    (HEAD + BASIC.replace("annual_cap = 10", "annual_cap = 10.0"), "annual_cap", "float"),
    (HEAD + BASIC.replace("L1 = 1,", "L1 = 1.5,"), "deductible.L1", "float"),
    (HEAD + BASIC.replace("L2 = 0.75", "L2 = 1.2"), "ratio.L2", "outside"),
    (HEAD + BASIC.replace("L2 = 0.75", "L2 = -0.1"), "ratio.L2", "outside"),
    (HEAD + BASIC.replace("L2 = 0.75", "L2 = 0.12345"), "ratio.L2", "decimal"),
    (HEAD + BASIC + "out_of_county_unreferred_delta = -1.5\n", "out_of_county_unreferred_delta", "outside"),
    (HEAD + BASIC + "special_ratio_bonus = -0.05\n", "special_ratio_bonus", "outside"),
    (HEAD + BASIC + 'special_categories = ["poor"]\n', "special_categories", "unknown"),
    (HEAD + BASIC + 'special_bonus_scope = "county"\n', "special_bonus_scope", "county"),
    (HEAD + CRIT + "tiers = []\n", "tiers", "empty"),
    (HEAD + CRIT + "tiers = [ { up_to = 5, ratio = 0.6 }, { up_to = 5, ratio = 0.7 }, { ratio = 0.8 } ]\n",
     "tiers[1].up_to", "increasing"),
    (HEAD + CRIT + "tiers = [ { up_to = 0, ratio = 0.6 }, { ratio = 0.8 } ]\n", "tiers[0].up_to", "0"),
    (HEAD + CRIT + "tiers = [ { ratio = 0.6 }, { ratio = 0.8 } ]\n", "tiers[0].up_to", "missing"),
    (HEAD + CRIT + "tiers = [ { up_to = 5, ratio = 0.6 }, { up_to = 9, ratio = 0.8 } ]\n", "tiers[1].up_to",
     "last"),
    (HEAD + CRIT + "tiers = [ { up_to = 5.0, ratio = 0.6 }, { ratio = 0.8 } ]\n", "tiers[0].up_to", "float"),
    (HEAD + "[assistance]\nannual_cap = 1\ncategories.rich = { ratio = 0.5, deductible = 0 }\n",
     "categories.rich", "unknown"),
    (HEAD + "[assistance]\nannual_cap = 1\ncategories.monitored = { ratio = 1.5, deductible = 0 }\n",
     "categories.monitored.ratio", "outside"),
    (HEAD + '[top_up]\ntarget_ratio = 0.9\ncategories = []\nbase = "net"\n', "base", "net"),
    (HEAD.replace("2024-01-01", "2024-06-01") + "effective_to = 2024-05-31\n", "effective_to", "before"),
    (HEAD + "illustrative = true\nregionn = \"53\"\n", "regionn", "unknown"),
    (HEAD + BASIC + "special_deductible_factor = 1.5\n", "special_deductible_factor", "outside"),
    (HEAD + CRIT + "tiers = [ { up_to = 5, ratio = 0.6 }, { up_to = 3, ratio = 0.7 }, { ratio = 0.8 } ]\n",
     "tiers[1].up_to", "increasing"),
    (HEAD + CRIT + "tiers = [ { up_to = 5 }, { ratio = 0.8 } ]\n", "tiers[0].ratio", "missing"),
    (HEAD + CRIT + "tiers = [ { up_to = 5, ratio = 0.6, bonus = 1 }, { ratio = 0.8 } ]\n", "tiers[0].bonus",
     "unknown"),
    (HEAD + CRIT + "tiers = [ { ratio = 0.123456 } ]\n", "tiers[0].ratio", "decimal"),
    (HEAD + CRIT + "tiers = [ { ratio = 0.8 } ]\nspecial_ratio_bonus = 2\n", "special_ratio_bonus", "outside"),
    (HEAD + "[assistance]\nannual_cap = 1\ncategories.monitored = { ratio = 0.5, deductible = 1.0 }\n",
     "categories.monitored.deductible", "float"),
    (HEAD + "[assistance]\nannual_cap = 1\ncategories.monitored = { ratio = 0.5, deductible = -1 }\n",
     "categories.monitored.deductible", "negative"),
    (HEAD + '[top_up]\ntarget_ratio = 0.9\ncategories = ["rich"]\n', "categories", "unknown"),
    (HEAD + "[top_up]\ntarget_ratio = 90\ncategories = []\n", "target_ratio", "outside"),
    (HEAD + '[deposit_waiver]\ncategories = ["poor"]\n', "categories", "unknown"),
    (HEAD + "[deposit_waiver]\ncategories = []\nhospitals = []\n", "hospitals", "unknown"),
]


@pytest.mark.parametrize(("text", "key", "problem"), LOAD_ERRORS, ids=[k for _, k, _ in LOAD_ERRORS])
def test_load_error_exits_2_naming_file_key_problem(text: str, key: str, problem: str) -> None:
    line = json.dumps({"discharge_id": "d1", "discharged_at": "2024-03-05", "level": "L1", "in_county": True,
                       "referred": False, "total_fen": 100, "out_of_policy_fen": 0})
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "bad_policy.toml").write_text(text, encoding="utf-8")
        (d / "person.json").write_text('{"categories": [], "enrolled_years": [2024]}', encoding="utf-8")
        (d / "in.jsonl").write_text(line + "\n", encoding="utf-8")
        out, err = io.StringIO(), io.StringIO()
        rc = settle_command(str(d / "bad_policy.toml"), str(d / "person.json"), str(d / "in.jsonl"), out, err)
    message = err.getvalue()
    assert rc == 2, (out.getvalue(), message)
    assert out.getvalue() == ""
    assert "bad_policy.toml" in message and key in message and problem.lower() in message.lower(), message


def test_cli_entry_point_matches_reference(tmp_path: Path) -> None:
    """The installed ``hub settle`` (same code path) on the spec's example line and its reversal."""
    hub = Path(sys.executable).parent / "hub"
    assert hub.exists(), "the `hub` console script is not installed in this venv: `make test` installs it"
    person = {"categories": ["poverty_alleviated"], "enrolled_years": [2024], "insured_region": "530102"}
    lines = [json.dumps({"discharge_id": "d1", "discharged_at": "2024-03-05", "level": "L2", "in_county": True,
                         "referred": False, "total_fen": 1234500, "out_of_policy_fen": 100000}),
             "", json.dumps({"reverses": "d1"}), json.dumps({"reverses": "d1"})]
    (tmp_path / "p.toml").write_text(SPEC_POLICY, encoding="utf-8")
    (tmp_path / "person.json").write_text(json.dumps(person), encoding="utf-8")
    (tmp_path / "d.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc = subprocess.run([str(hub), "settle", "--policy", str(tmp_path / "p.toml"), "--person",
                           str(tmp_path / "person.json"), str(tmp_path / "d.jsonl")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    got = [json.loads(x) for x in proc.stdout.splitlines()]
    want = reference_settle(SPEC_POLICY, person, lines)
    assert len(got) == len(want) == 3
    for g, w in zip(got, want, strict=True):
        for key in w:
            if key != "detail":
                assert g[key] == w[key], (g, w)
    assert all(got[1][k] == -got[0][k] for k in FEN_FIELDS)
