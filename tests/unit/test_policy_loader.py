"""Policy files (policy-spec §2, §5.3 ``[risk]``, §6.1 ``[referrals]``): loading, defaults, errors, selection."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from hub.errors import PolicyError
from hub.policy.loader import load_policies, load_policy, select_policy
from hub.policy.model import DEFAULT_ROUTES, Route, Tier

FIXTURES = Path(__file__).parent / "fixtures"
SPEC_EXAMPLE = (FIXTURES / "spec_example_policy.toml").read_text(encoding="utf-8")
REGIONS = Path(__file__).resolve().parents[2] / "hub" / "policy" / "regions"

MINIMAL = """
[policy]
region = "530000"
name = "Minimal"
effective_from = 2024-01-01
"""


def write(tmp_path: Path, text: str, name: str = "p.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str) -> object:
    return load_policy(write(tmp_path, text))


# ---------------------------------------------------------------- §2: the example file


def test_spec_example_loads_with_ratios_in_basis_points(tmp_path: Path) -> None:
    """§3: bp(x) = round(x × 10000), computed when the file loads."""
    p = load_policy(write(tmp_path, SPEC_EXAMPLE))
    assert (p.region, p.name, p.effective_from, p.effective_to) == (
        "530000", "Yunnan Province", date(2021, 8, 16), date(2025, 12, 31))
    assert p.illustrative is True
    assert p.region_prefix == "53"
    assert p.basic is not None and p.critical is not None and p.assistance is not None
    assert p.basic.deductible == {"L1": 20000, "L2": 50000, "L3": 100000}
    assert p.basic.ratio_bp == {"L1": 9000, "L2": 7500, "L3": 6000}
    assert p.basic.out_of_county_unreferred_delta_bp == -1000
    assert p.basic.special_ratio_bonus_bp == 500
    assert p.basic.special_bonus_scope == "in_county_or_referred"
    assert p.basic.special_deductible_factor_bp == 10000
    assert p.critical.tiers == (Tier(5000000, 6000), Tier(10000000, 7000), Tier(None, 8000))
    assert p.critical.special_deductible_factor_bp == 5000
    assert p.critical.special_ratio_bonus_bp == 1000
    assert p.critical.special_no_cap is True
    assert p.assistance.categories["monitored"].ratio_bp == 6000
    assert p.assistance.categories["monitored"].deductible == 100000
    assert p.top_up is not None and p.top_up.target_ratio_bp == 9000 and p.top_up.base == "total"
    assert p.deposit_waiver is not None and p.deposit_waiver.designated_hospitals == frozenset()
    assert p.risk is None  # no [risk] section: no flags
    assert p.routes == DEFAULT_ROUTES  # no [referrals] section: the §6.1 table
    assert p.source.endswith("p.toml")


def test_absent_sections_are_none_and_defaults_apply(tmp_path: Path) -> None:
    """§2: any section may be absent; listed keys default (special lists [], bonus 0, factor 1, scope all…)."""
    p = load_text(tmp_path, MINIMAL + """
[basic]
deductible = { L1 = 0, L2 = 0, L3 = 0 }
ratio = { L1 = 1, L2 = 0, L3 = 0.5 }
annual_cap = 0
[critical]
deductible = 0
tiers = [ { ratio = 0.5 } ]
annual_cap = 0
[assistance]
annual_cap = 0
[top_up]
target_ratio = 0.9
categories = []
[deposit_waiver]
categories = ["monitored"]
""")
    assert p.effective_to is None and p.illustrative is False
    b = p.basic
    # integer ratios 1 and 0 are accepted (TOML has no 1.0 requirement)
    assert b.ratio_bp == {"L1": 10000, "L2": 0, "L3": 5000}
    assert (b.special_categories, b.special_ratio_bonus_bp, b.special_deductible_factor_bp,
            b.special_bonus_scope, b.out_of_county_unreferred_delta_bp) == (frozenset(), 0, 10000, "all", 0)
    c = p.critical
    assert (c.special_no_cap, c.special_deductible_factor_bp, c.special_ratio_bonus_bp) == (False, 10000, 0)
    assert c.tiers == (Tier(None, 5000),)
    assert p.assistance.categories == {}
    assert p.top_up.base == "total"
    assert p.deposit_waiver.designated_hospitals == frozenset()


def test_ratio_with_exactly_four_decimals_is_whole_basis_points(tmp_path: Path) -> None:
    """§2: ratios are whole basis points; 0.5555 → 5555 exactly (float 0.5555×10000 is 5554.999…)."""
    p = load_text(tmp_path, MINIMAL + """
[top_up]
target_ratio = 0.5555
categories = ["poverty_alleviated"]
base = "in_policy"
""")
    assert p.top_up.target_ratio_bp == 5555
    assert p.top_up.base == "in_policy"


# ---------------------------------------------------------------- §5.3 [risk] and §6.1 [referrals]


def test_risk_section_defaults_and_icd10_normalisation(tmp_path: Path) -> None:
    """§5.3: only oop_threshold is required; ICD-10 entries normalised (upper, no spaces/dots) at load."""
    p = load_text(tmp_path, MINIMAL + """
[risk]
oop_threshold = 1
major_disease_codes = ["c34.1", " i 21", "C34.1"]
""")
    r = p.risk
    assert r.oop_threshold == 1
    assert r.oop_income_fraction_bp is None  # absent = off
    assert r.watch_general_population is False
    assert r.burden_categories == frozenset({"poverty_alleviated", "monitored"})
    assert r.watched_categories == frozenset({"poverty_alleviated", "monitored", "minimum_living",
                                              "extreme_poverty"})
    assert r.major_disease_codes == ("C341", "I21")  # normalised, duplicates dropped
    assert r.chronic_codes[:2] == ("I10", "I11") and len(r.chronic_codes) == 14
    assert (r.signing_grace_days, r.followup_days) == (30, 90)
    assert r.gap_facility_kinds == frozenset({"village_clinic", "township_center"})


def test_risk_section_all_keys(tmp_path: Path) -> None:
    p = load_text(tmp_path, MINIMAL + """
[risk]
oop_threshold = 500000
oop_income_fraction = 0.5
watch_general_population = true
burden_categories = ["monitored"]
watched_categories = ["extreme_poverty"]
chronic_codes = ["e11.9"]
signing_grace_days = 0
followup_days = 1
gap_facility_kinds = ["hospital", "community_center"]
""")
    r = p.risk
    assert r.oop_income_fraction_bp == 5000 and r.watch_general_population is True
    assert r.burden_categories == frozenset({"monitored"})
    assert r.watched_categories == frozenset({"extreme_poverty"})
    assert r.chronic_codes == ("E119",)
    assert (r.signing_grace_days, r.followup_days) == (0, 1)
    assert r.gap_facility_kinds == frozenset({"hospital", "community_center"})


def test_referrals_section_replaces_the_table_whole(tmp_path: Path) -> None:
    """§6.1: one [[referrals.route]] per row, in table order."""
    p = load_text(tmp_path, MINIMAL + """
[[referrals.route]]
flag = "uninsured"
department = "insurance"
type = "enrollment"
sla_days = 3
[[referrals.route]]
flag = "major_disease"
department = "charity"
type = "special_fund"
sla_days = 1
""")
    assert p.routes == (Route("uninsured", "insurance", "enrollment", 3),
                        Route("major_disease", "charity", "special_fund", 1))


def test_referrals_section_without_rows_means_no_referrals(tmp_path: Path) -> None:
    """§6.1: "A section with no rows means no referrals at all"."""
    assert load_text(tmp_path, MINIMAL + "\n[referrals]\n").routes == ()
    assert load_text(tmp_path, MINIMAL + "\n[referrals]\nroute = []\n").routes == ()


# ---------------------------------------------------------------- load errors (§2, §5.3, §6.1)

BASIC = """
[basic]
deductible = { L1 = 20000, L2 = 50000, L3 = 100000 }
ratio = { L1 = 0.90, L2 = 0.75, L3 = 0.60 }
annual_cap = 15000000
"""
CRITICAL = """
[critical]
deductible = 1500000
tiers = [ { up_to = 5000000, ratio = 0.60 }, { up_to = 10000000, ratio = 0.70 }, { ratio = 0.80 } ]
annual_cap = 40000000
"""
ROUTE = """
[[referrals.route]]
flag = "uninsured"
department = "insurance"
type = "enrollment"
sla_days = 15
"""

# (name, file text, dotted key, a fragment of the problem)
ERROR_CASES = [
    ("toml syntax", MINIMAL + "\n[basic\n", "(toml)", "TOML syntax error"),
    ("unknown section", MINIMAL + "\n[bonus]\nx = 1\n", "bonus", "unknown key"),
    ("unknown top-level key", "x = 1\n" + MINIMAL, "x", "unknown key"),
    ("unknown key in section", MINIMAL + BASIC + "foo = 1\n", "basic.foo", "unknown key"),
    ("unknown key in policy", MINIMAL + "regoin = \"53\"\n", "policy.regoin", "unknown key"),
    ("missing [policy]", BASIC, "policy", "missing required key"),
    ("missing region", MINIMAL.replace('region = "530000"\n', ""), "policy.region", "missing required key"),
    ("missing name", MINIMAL.replace('name = "Minimal"\n', ""), "policy.name", "missing required key"),
    ("missing effective_from", MINIMAL.replace("effective_from = 2024-01-01\n", ""),
     "policy.effective_from", "missing required key"),
    ("region not a code", MINIMAL.replace('"530000"', '"Yunnan"'), "policy.region", "GB/T 2260"),
    ("region an integer", MINIMAL.replace('"530000"', "530000"), "policy.region", "expected a non-empty string"),
    ("effective_from a string", MINIMAL.replace("2024-01-01", '"2024-01-01"'),
     "policy.effective_from", "TOML date"),
    ("effective_from a datetime", MINIMAL.replace("2024-01-01", "2024-01-01T00:00:00Z"),
     "policy.effective_from", "TOML date"),
    ("effective_to before from", MINIMAL + "effective_to = 2023-12-31\n", "policy.effective_to", "before"),
    ("illustrative not bool", MINIMAL + "illustrative = 1\n", "policy.illustrative", "true or false"),
    ("missing deductible level", MINIMAL + BASIC.replace(", L3 = 100000", ""),
     "basic.deductible.L3", "missing required key"),
    ("unknown level", MINIMAL + BASIC.replace("L3 = 100000", "L3 = 100000, L4 = 1"),
     "basic.deductible.L4", "unknown key"),
    ("missing ratio", MINIMAL + BASIC.replace("ratio = { L1 = 0.90, L2 = 0.75, L3 = 0.60 }\n", ""),
     "basic.ratio", "missing required key"),
    ("missing basic annual_cap", MINIMAL + BASIC.replace("annual_cap = 15000000\n", ""),
     "basic.annual_cap", "missing required key"),
    ("negative amount", MINIMAL + BASIC.replace("L2 = 50000", "L2 = -1"), "basic.deductible.L2", "negative"),
    ("float where fen expected", MINIMAL + BASIC.replace("15000000", "15000000.0"),
     "basic.annual_cap", "float"),
    ("boolean where fen expected", MINIMAL + BASIC.replace("15000000", "true"),
     "basic.annual_cap", "expected an integer"),
    ("ratio above 1", MINIMAL + BASIC.replace("L2 = 0.75", "L2 = 1.05"), "basic.ratio.L2", "outside [0, 1]"),
    ("ratio below 0", MINIMAL + BASIC.replace("L2 = 0.75", "L2 = -0.1"), "basic.ratio.L2", "outside [0, 1]"),
    ("ratio integer 2", MINIMAL + BASIC.replace("L2 = 0.75", "L2 = 2"), "basic.ratio.L2", "outside [0, 1]"),
    ("ratio 5 decimals", MINIMAL + BASIC.replace("L2 = 0.75", "L2 = 0.75005"), "basic.ratio.L2", "4 decimal"),
    ("ratio a string", MINIMAL + BASIC.replace("L2 = 0.75", 'L2 = "0.75"'), "basic.ratio.L2", "expected a ratio"),
    ("ratio a boolean", MINIMAL + BASIC.replace("L2 = 0.75", "L2 = true"), "basic.ratio.L2", "expected a ratio"),
    ("ratio nan", MINIMAL + BASIC.replace("L2 = 0.75", "L2 = nan"), "basic.ratio.L2", "finite"),
    ("delta below -1", MINIMAL + BASIC + "out_of_county_unreferred_delta = -1.5\n",
     "basic.out_of_county_unreferred_delta", "outside [-1, 1]"),
    ("delta above 1", MINIMAL + BASIC + "out_of_county_unreferred_delta = 1.01\n",
     "basic.out_of_county_unreferred_delta", "outside [-1, 1]"),
    ("bonus outside [0,1]", MINIMAL + BASIC + "special_ratio_bonus = -0.05\n",
     "basic.special_ratio_bonus", "outside [0, 1]"),
    ("factor outside [0,1]", MINIMAL + BASIC + "special_deductible_factor = 1.5\n",
     "basic.special_deductible_factor", "outside [0, 1]"),
    ("bad special_bonus_scope", MINIMAL + BASIC + 'special_bonus_scope = "in_county"\n',
     "basic.special_bonus_scope", "in_county_or_referred"),
    ("unknown category", MINIMAL + BASIC + 'special_categories = ["poor"]\n',
     "basic.special_categories[0]", "unknown category"),
    ("categories not a list", MINIMAL + BASIC + 'special_categories = "monitored"\n',
     "basic.special_categories", "expected a list"),
    ("deductible not a table", MINIMAL + BASIC.replace("deductible = { L1 = 20000, L2 = 50000, L3 = 100000 }",
                                                       "deductible = 20000"), "basic.deductible", "table"),
    ("critical missing tiers", MINIMAL + CRITICAL.replace(
        "tiers = [ { up_to = 5000000, ratio = 0.60 }, { up_to = 10000000, ratio = 0.70 }, { ratio = 0.80 } ]\n",
        ""), "critical.tiers", "missing required key"),
    ("tiers empty list", MINIMAL + "[critical]\ndeductible = 0\ntiers = []\nannual_cap = 0\n",
     "critical.tiers", "must not be empty"),
    ("tiers not increasing", MINIMAL + CRITICAL.replace("up_to = 10000000", "up_to = 5000000"),
     "critical.tiers[1].up_to", "strictly increasing"),
    ("tiers decreasing", MINIMAL + CRITICAL.replace("up_to = 10000000", "up_to = 400"),
     "critical.tiers[1].up_to", "strictly increasing"),
    ("first up_to 0", MINIMAL + CRITICAL.replace("up_to = 5000000", "up_to = 0"),
     "critical.tiers[0].up_to", "greater than 0"),
    ("missing up_to before last", MINIMAL + CRITICAL.replace("{ up_to = 10000000, ratio = 0.70 }",
                                                            "{ ratio = 0.70 }"),
     "critical.tiers[1].up_to", "missing required key"),
    ("up_to on last tier", MINIMAL + CRITICAL.replace("{ ratio = 0.80 }", "{ up_to = 20000000, ratio = 0.80 }"),
     "critical.tiers[2].up_to", "last tier"),
    ("tier missing ratio", MINIMAL + CRITICAL.replace("{ ratio = 0.80 }", "{ }"),
     "critical.tiers[2].ratio", "missing required key"),
    ("tier unknown key", MINIMAL + CRITICAL.replace("{ ratio = 0.80 }", "{ ratio = 0.80, rate = 1 }"),
     "critical.tiers[2].rate", "unknown key"),
    ("tier up_to float", MINIMAL + CRITICAL.replace("up_to = 5000000", "up_to = 5000000.5"),
     "critical.tiers[0].up_to", "float"),
    ("special_no_cap not bool", MINIMAL + CRITICAL + 'special_no_cap = "yes"\n',
     "critical.special_no_cap", "true or false"),
    ("assistance missing cap", MINIMAL + "[assistance]\n", "assistance.annual_cap", "missing required key"),
    ("assistance unknown category", MINIMAL + "[assistance]\nannual_cap = 1\n"
     "categories.orphan = { ratio = 1.0, deductible = 0 }\n", "assistance.categories.orphan", "unknown category"),
    ("assistance entry missing ratio", MINIMAL + "[assistance]\nannual_cap = 1\n"
     "categories.monitored = { deductible = 0 }\n", "assistance.categories.monitored.ratio",
     "missing required key"),
    ("assistance entry negative deductible", MINIMAL + "[assistance]\nannual_cap = 1\n"
     "categories.monitored = { ratio = 0.5, deductible = -5 }\n", "assistance.categories.monitored.deductible",
     "negative"),
    ("top_up missing categories", MINIMAL + "[top_up]\ntarget_ratio = 0.9\n", "top_up.categories",
     "missing required key"),
    ("top_up missing target", MINIMAL + "[top_up]\ncategories = []\n", "top_up.target_ratio",
     "missing required key"),
    ("top_up bad base", MINIMAL + '[top_up]\ntarget_ratio = 0.9\ncategories = []\nbase = "net"\n',
     "top_up.base", "'total', 'in_policy'"),
    ("deposit_waiver missing categories", MINIMAL + "[deposit_waiver]\n", "deposit_waiver.categories",
     "missing required key"),
    ("designated_hospitals not strings", MINIMAL + "[deposit_waiver]\ncategories = []\ndesignated_hospitals = [1]\n",
     "deposit_waiver.designated_hospitals[0]", "non-empty string"),
    ("section not a table", "basic = 1\n" + MINIMAL, "basic", "expected a table"),
    ("key outside its section", MINIMAL + "annual_cap = 1\n", "policy.annual_cap", "unknown key"),
    ("risk missing oop_threshold", MINIMAL + "[risk]\n", "risk.oop_threshold", "missing required key"),
    ("oop_threshold 0", MINIMAL + "[risk]\noop_threshold = 0\n", "risk.oop_threshold", "at least 1"),
    ("oop_threshold float", MINIMAL + "[risk]\noop_threshold = 1.0\n", "risk.oop_threshold", "float"),
    ("oop_income_fraction > 1", MINIMAL + "[risk]\noop_threshold = 1\noop_income_fraction = 2\n",
     "risk.oop_income_fraction", "outside [0, 1]"),
    ("watch_general_population not bool", MINIMAL + "[risk]\noop_threshold = 1\nwatch_general_population = 0\n",
     "risk.watch_general_population", "true or false"),
    ("risk unknown category", MINIMAL + '[risk]\noop_threshold = 1\nwatched_categories = ["everyone"]\n',
     "risk.watched_categories[0]", "unknown category"),
    ("unknown facility kind", MINIMAL + '[risk]\noop_threshold = 1\ngap_facility_kinds = ["clinic"]\n',
     "risk.gap_facility_kinds[0]", "unknown facility kind"),
    ("codes hold strings", MINIMAL + "[risk]\noop_threshold = 1\nmajor_disease_codes = [34]\n",
     "risk.major_disease_codes[0]", "non-empty string"),
    ("empty code after normalising", MINIMAL + '[risk]\noop_threshold = 1\nchronic_codes = [" . "]\n',
     "risk.chronic_codes[0]", "empty"),
    ("signing_grace_days negative", MINIMAL + "[risk]\noop_threshold = 1\nsigning_grace_days = -1\n",
     "risk.signing_grace_days", "≥ 0"),
    ("followup_days 0", MINIMAL + "[risk]\noop_threshold = 1\nfollowup_days = 0\n", "risk.followup_days", "≥ 1"),
    ("followup_days float", MINIMAL + "[risk]\noop_threshold = 1\nfollowup_days = 1.5\n",
     "risk.followup_days", "whole number"),
    ("signing_grace_days bool", MINIMAL + "[risk]\noop_threshold = 1\nsigning_grace_days = true\n",
     "risk.signing_grace_days", "whole number"),
    ("route unknown department", MINIMAL + ROUTE.replace('"insurance"', '"police"'),
     "referrals.route[0].department", "expected one of"),
    ("route unknown flag", MINIMAL + ROUTE.replace('"uninsured"', '"poor"'),
     "referrals.route[0].flag", "expected one of"),
    ("route missing type", MINIMAL + ROUTE.replace('type = "enrollment"\n', ""),
     "referrals.route[0].type", "missing required key"),
    ("route sla_days 0", MINIMAL + ROUTE.replace("sla_days = 15", "sla_days = 0"),
     "referrals.route[0].sla_days", "≥ 1"),
    ("route sla_days float", MINIMAL + ROUTE.replace("sla_days = 15", "sla_days = 1.5"),
     "referrals.route[0].sla_days", "whole number"),
    ("route unknown key", MINIMAL + ROUTE + 'note = "x"\n', "referrals.route[0].note", "unknown key"),
    ("duplicate route", MINIMAL + ROUTE + ROUTE.replace("sla_days = 15", "sla_days = 3"),
     "referrals.route[1]", "duplicate route"),
    ("referrals unknown key", MINIMAL + "[referrals]\nroutes = []\n", "referrals.routes", "unknown key"),
]


@pytest.mark.parametrize(("text", "key", "fragment"), [c[1:] for c in ERROR_CASES],
                         ids=[c[0] for c in ERROR_CASES])
def test_load_error_names_file_key_and_problem(tmp_path: Path, text: str, key: str, fragment: str) -> None:
    """§2/§5.3/§6.1: "Load errors, each naming the file, the key and the problem"."""
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    err = info.value
    assert err.file == str(path)
    assert err.key == key, str(err)
    assert fragment in err.problem, str(err)
    assert str(err).startswith(f"{path}: {key}: ")


def test_missing_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "nope.toml")


# ---------------------------------------------------------------- §2 selection


def policy_at(tmp_path: Path, region: str, start: str, end: str | None = None, name: str | None = None) -> Path:
    text = f'[policy]\nregion = "{region}"\nname = "{name or region}"\neffective_from = {start}\n'
    if end:
        text += f"effective_to = {end}\n"
    return write(tmp_path, text, f"{name or region}.toml")


def test_select_longest_prefix_of_the_insured_region(tmp_path: Path) -> None:
    """§2: 530000→53, 530100→5301, 530102→530102; the longest prefix of the insured region wins."""
    for region in ("530000", "530100", "532503"):
        policy_at(tmp_path, region, "2021-01-01")
    ps = load_policies(tmp_path)
    day = date(2024, 3, 5)
    assert select_policy(ps, "530102", day).region == "530100"  # 5301 beats 53
    assert select_policy(ps, "530300", day).region == "530000"  # only 53 is a prefix of 5303
    assert select_policy(ps, "532503", day).region == "532503"
    assert select_policy(ps, "530000", day).region == "530000"  # 5301 is not a prefix of 53
    assert select_policy(ps, "450100", day) is None  # no match → no_policy


def test_select_effective_dates_include_both_ends(tmp_path: Path) -> None:
    """§2: "Effective dates include both ends"; outside them the next shorter prefix may apply."""
    policy_at(tmp_path, "530000", "2021-01-01")
    policy_at(tmp_path, "530100", "2024-01-01", "2024-12-31")
    ps = load_policies(tmp_path)
    assert select_policy(ps, "530102", date(2024, 1, 1)).region == "530100"
    assert select_policy(ps, "530102", date(2024, 12, 31)).region == "530100"
    assert select_policy(ps, "530102", date(2025, 1, 1)).region == "530000"
    assert select_policy(ps, "530102", date(2020, 12, 31)) is None


def test_select_without_insured_region_takes_any_policy_covering_the_day(tmp_path: Path) -> None:
    """``hub settle`` without insured_region: the policy's own dates decide."""
    ps = [load_policy(policy_at(tmp_path, "530000", "2021-08-16", "2025-12-31"))]
    assert select_policy(ps, None, date(2025, 12, 31)) is ps[0]
    assert select_policy(ps, None, date(2026, 1, 1)) is None


def test_load_policies_accepts_a_list_of_paths(tmp_path: Path) -> None:
    a = policy_at(tmp_path, "530000", "2021-01-01")
    b = policy_at(tmp_path, "450100", "2021-01-01")
    assert [p.region for p in load_policies([b, a])] == ["450100", "530000"]


# ---------------------------------------------------------------- bundled region files


def test_bundled_region_files_load_with_risk_sections() -> None:
    """The seed regions (shared/seeds) load; each has a [risk] section and says it is illustrative."""
    ps = {p.region: p for p in load_policies(REGIONS) if p.effective_from.year < 2026}  # the seeds' own periods
    assert set(ps) == {"530000", "430511", "450100", "520000", "532503"}
    for p in ps.values():
        assert p.risk is not None and p.risk.major_disease_codes and p.illustrative
    # Nanning: +5 points basic (in region or referred), critical deductible −50% and +10 points, top-up to 90%
    nn = ps["450100"]
    assert (nn.basic.special_ratio_bonus_bp, nn.basic.special_bonus_scope) == (500, "in_county_or_referred")
    assert (nn.critical.special_deductible_factor_bp, nn.critical.special_ratio_bonus_bp) == (5000, 1000)
    assert (nn.top_up.target_ratio_bp, nn.top_up.categories) == (9000, frozenset({"poverty_alleviated"}))
    # Beita: 先诊疗后付费 for 低保、特困、监测对象 at the six institutions of 附件2
    bt = ps["430511"]
    assert bt.deposit_waiver.categories == frozenset({"minimum_living", "extreme_poverty", "monitored"})
    assert "陈家桥卫生院" in bt.deposit_waiver.designated_hospitals
    assert len(bt.deposit_waiver.designated_hospitals) == 6
    # Mengzi is inside Yunnan: the longer prefix wins for a Mengzi-insured person
    assert select_policy(ps.values(), "532503", date(2022, 6, 1)).region == "532503"
    assert select_policy(ps.values(), "530102", date(2022, 6, 1)).region == "530000"


def test_bundled_2026_files_carry_the_2025_numbers_forward_and_say_so() -> None:
    """Issue 15: the bundled policies ended 2025-12-31, so every live discharge was ``no_policy``. The seed
    regions with a 2021–2025 policy have a 2026 file with the same rules, marked illustrative, that says so."""
    from dataclasses import replace

    ps = load_policies(REGIONS)
    by_period = {(p.region, p.effective_from.year): p for p in ps}
    for region in ("430511", "530000", "532503"):
        old = next(p for p in ps if p.region == region and p.effective_to == date(2025, 12, 31))
        new = by_period[(region, 2026)]
        assert (new.effective_from, new.effective_to, new.illustrative) == (date(2026, 1, 1), date(2026, 12, 31), True)
        assert replace(new, effective_from=old.effective_from, effective_to=old.effective_to, source=old.source) == old
        assert "ILLUSTRATIVE CARRY-FORWARD" in Path(new.source).read_text(encoding="utf-8")
    # §2 selection: a Mengzi-insured discharge of 2026 settles under Mengzi's 2026 file, Kunming's under Yunnan's
    assert select_policy(ps, "532503", date(2026, 12, 6)) is by_period[("532503", 2026)]
    assert select_policy(ps, "530102", date(2026, 1, 1)) is by_period[("530000", 2026)]
    assert select_policy(ps, "532503", date(2027, 1, 1)) is None  # the next year's file is still to be added
