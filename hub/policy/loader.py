"""Load and select region policy files (policy-spec §2, §5.3, §6.1).

Why strict: a policy file is the only place the hub's numbers live, and a typo in it would pay the
wrong amount to every person of a pooling region. So every key is checked when the file loads, and
every problem is a :class:`~hub.errors.PolicyError` naming the file, the dotted key
(``basic.ratio.L2``, ``critical.tiers[1].up_to``) and what was expected. Ratios become whole basis
points here, through ``Decimal``, so the rule code never sees a float.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, NoReturn

from hub.errors import PolicyError
from hub.policy.model import (
    CATEGORIES,
    DEFAULT_ROUTES,
    DEPARTMENTS,
    FACILITY_KINDS,
    FLAG_KINDS,
    LEVELS,
    AssistanceCategory,
    AssistanceRules,
    BasicRules,
    CriticalRules,
    DepositWaiverRules,
    Policy,
    RiskRules,
    Route,
    Tier,
    TopUpRules,
    strip_region,
)

__all__ = ["load_policy", "load_policies", "select_policy", "normalise_icd10"]

SECTIONS = ("policy", "basic", "critical", "assistance", "top_up", "deposit_waiver", "risk", "referrals")
BONUS_SCOPES = ("all", "in_county_or_referred")
TOP_UP_BASES = ("total", "in_policy")
_RISK_DEFAULTS = RiskRules(oop_threshold=1)


def normalise_icd10(code: str) -> str:
    """ICD-10 as compared everywhere (§5.3): upper case, spaces and dots removed (``c34.1`` → ``C341``)."""
    return code.upper().replace(" ", "").replace(".", "")


class _Reader:
    """Typed access to one TOML table, raising PolicyError with the dotted key on any problem."""

    def __init__(self, file: str, prefix: str, table: Mapping[str, Any], allowed: Iterable[str]) -> None:
        self.file = file
        self.prefix = prefix
        self.table = table
        allowed = tuple(allowed)
        for key in table:
            if key not in allowed:
                self.fail(key, f"unknown key (expected one of: {', '.join(allowed)})")

    def key(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def fail(self, key: str, problem: str) -> NoReturn:
        raise PolicyError(self.file, self.key(key), problem)

    def has(self, key: str) -> bool:
        return key in self.table

    def raw(self, key: str, required: bool) -> Any:
        if key not in self.table:
            if required:
                self.fail(key, "missing required key")
            return None
        return self.table[key]

    def fen(self, key: str, required: bool = True, default: int = 0, minimum: int = 0) -> int:
        """An amount in integer fen (a float is refused: money is never a float)."""
        value = self.raw(key, required)
        if value is None:
            return default
        return _fen(self.file, self.key(key), value, minimum)

    def ratio(self, key: str, required: bool = True, default: int = 0, low: int = 0) -> int:
        """A ratio in [low/10000, 1] with at most 4 decimal places, returned in basis points."""
        value = self.raw(key, required)
        if value is None:
            return default
        return _ratio_bp(self.file, self.key(key), value, low)

    def boolean(self, key: str, default: bool = False) -> bool:
        value = self.raw(key, False)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.fail(key, f"expected true or false, found {_describe(value)}")
        return value

    def string(self, key: str, required: bool = True, choices: tuple[str, ...] = ()) -> str | None:
        value = self.raw(key, required)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            self.fail(key, f"expected a non-empty string, found {_describe(value)}")
        if choices and value not in choices:
            self.fail(key, f"expected one of {', '.join(repr(c) for c in choices)}, found {value!r}")
        return value

    def day(self, key: str, required: bool = True) -> date | None:
        value = self.raw(key, required)
        if value is None:
            return None
        if isinstance(value, datetime) or not isinstance(value, date):
            self.fail(key, f"expected a TOML date such as 2024-01-01, found {_describe(value)}")
        return value

    def strings(self, key: str, default: Iterable[str] = (), choices: tuple[str, ...] = (),
                what: str = "value", required: bool = False) -> tuple[str, ...]:
        """A list of non-empty strings, each one of ``choices`` when given (else ``unknown what``)."""
        value = self.raw(key, required)
        if value is None:
            return tuple(default)
        if not isinstance(value, list):
            self.fail(key, f"expected a list of strings, found {_describe(value)}")
        out: list[str] = []
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                self.fail(f"{key}[{i}]", f"expected a non-empty string, found {_describe(item)}")
            if choices and item not in choices:
                self.fail(f"{key}[{i}]", f"unknown {what} {item!r} (expected one of: {', '.join(choices)})")
            if item not in out:
                out.append(item)
        return tuple(out)

    def categories(self, key: str, required: bool = False) -> frozenset[str]:
        return frozenset(self.strings(key, choices=CATEGORIES, what="category", required=required))

    def sub(self, key: str, allowed: Iterable[str], required: bool = True) -> _Reader | None:
        value = self.raw(key, required)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.fail(key, f"expected a table, found {_describe(value)}")
        return _Reader(self.file, self.key(key), value, allowed)


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def _fen(file: str, key: str, value: Any, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float):
            raise PolicyError(file, key, f"expected an integer amount in fen, found float {value!r}")
        raise PolicyError(file, key, f"expected an integer, found {_describe(value)}")
    if value < 0:
        raise PolicyError(file, key, f"negative amount {value} (amounts are fen ≥ 0)")
    if value < minimum:
        raise PolicyError(file, key, f"must be at least {minimum}, found {value}")
    return value


def _ratio_bp(file: str, key: str, value: Any, low: int = 0) -> int:
    """``bp(x) = round(x × 10000)``, exact because at most 4 decimal places are allowed (§2)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PolicyError(file, key, f"expected a ratio (number), found {_describe(value)}")
    try:
        dec = Decimal(str(value))
    except InvalidOperation:  # pragma: no cover - str() of a number is always a Decimal literal
        raise PolicyError(file, key, f"not a number: {value!r}") from None
    if not dec.is_finite():
        raise PolicyError(file, key, f"expected a finite ratio, found {value!r}")
    lo = Decimal(low) / 10000
    if dec < lo or dec > 1:
        raise PolicyError(file, key, f"ratio {value} outside [{lo.normalize():f}, 1]")
    exponent = dec.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -4:
        raise PolicyError(file, key, f"ratio {value} has more than 4 decimal places "
                                     "(ratios are whole basis points)")
    return int(dec * 10000)


# ---------------------------------------------------------------- sections


def _policy_head(r: _Reader) -> dict[str, Any]:
    region = r.string("region")
    assert region is not None
    if not (region.isascii() and region.isdigit() and len(region) in (2, 4, 6)):
        r.fail("region", f"expected a GB/T 2260 code of 6 digits such as \"530000\", found {region!r}")
    name = r.string("name")
    effective_from = r.day("effective_from")
    effective_to = r.day("effective_to", required=False)
    assert effective_from is not None
    if effective_to is not None and effective_to < effective_from:
        r.fail("effective_to", f"effective_to {effective_to} is before effective_from {effective_from}")
    return {"region": region, "name": name, "effective_from": effective_from,
            "effective_to": effective_to, "illustrative": r.boolean("illustrative")}


def _by_level(r: _Reader, key: str, read: Callable[[_Reader, str], int]) -> dict[str, int]:
    sub = r.sub(key, LEVELS)
    assert sub is not None
    return {level: read(sub, level) for level in LEVELS}


def _basic(r: _Reader) -> BasicRules:
    return BasicRules(
        deductible=_by_level(r, "deductible", lambda s, k: s.fen(k)),
        ratio_bp=_by_level(r, "ratio", lambda s, k: s.ratio(k)),
        annual_cap=r.fen("annual_cap"),
        out_of_county_unreferred_delta_bp=r.ratio("out_of_county_unreferred_delta", False, 0, low=-10000),
        special_categories=r.categories("special_categories"),
        special_ratio_bonus_bp=r.ratio("special_ratio_bonus", False, 0),
        special_bonus_scope=r.string("special_bonus_scope", False, BONUS_SCOPES) or "all",
        special_deductible_factor_bp=r.ratio("special_deductible_factor", False, 10000),
    )


def _tiers(r: _Reader) -> tuple[Tier, ...]:
    raw = r.raw("tiers", True)
    if not isinstance(raw, list):
        r.fail("tiers", f"expected a list of tables such as [{{ up_to = 5000000, ratio = 0.6 }}, "
                        f"{{ ratio = 0.8 }}], found {_describe(raw)}")
    if not raw:
        r.fail("tiers", "tiers must not be empty")
    tiers: list[Tier] = []
    previous = 0
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            r.fail(f"tiers[{i}]", f"expected a table, found {_describe(item)}")
        t = _Reader(r.file, r.key(f"tiers[{i}]"), item, ("up_to", "ratio"))
        last = i == len(raw) - 1
        if last and t.has("up_to"):
            t.fail("up_to", "the last tier must not have an up_to (it is unbounded)")
        up_to = None
        if not last:
            if not t.has("up_to"):
                t.fail("up_to", "missing required key (every tier but the last needs an up_to)")
            up_to = t.fen("up_to")
            if i == 0 and up_to == 0:
                t.fail("up_to", "the first tier's up_to must be greater than 0")
            if i > 0 and up_to <= previous:
                t.fail("up_to", f"tiers must be strictly increasing: {up_to} ≤ previous up_to {previous}")
            previous = up_to
        tiers.append(Tier(up_to=up_to, ratio_bp=t.ratio("ratio")))
    return tuple(tiers)


def _critical(r: _Reader) -> CriticalRules:
    return CriticalRules(
        deductible=r.fen("deductible"),
        tiers=_tiers(r),
        annual_cap=r.fen("annual_cap"),
        special_categories=r.categories("special_categories"),
        special_deductible_factor_bp=r.ratio("special_deductible_factor", False, 10000),
        special_ratio_bonus_bp=r.ratio("special_ratio_bonus", False, 0),
        special_no_cap=r.boolean("special_no_cap"),
    )


def _assistance(r: _Reader) -> AssistanceRules:
    annual_cap = r.fen("annual_cap")
    cats: dict[str, AssistanceCategory] = {}
    table = r.raw("categories", False)
    if table is not None:
        if not isinstance(table, dict):
            r.fail("categories", "expected a table of category = { ratio, deductible }, "
                                 f"found {_describe(table)}")
        for name, entry in table.items():
            if name not in CATEGORIES:
                r.fail(f"categories.{name}",
                       f"unknown category {name!r} (expected one of: {', '.join(CATEGORIES)})")
            if not isinstance(entry, dict):
                r.fail(f"categories.{name}", f"expected a table {{ ratio = …, deductible = … }}, "
                                             f"found {_describe(entry)}")
            e = _Reader(r.file, r.key(f"categories.{name}"), entry, ("ratio", "deductible"))
            cats[name] = AssistanceCategory(ratio_bp=e.ratio("ratio"), deductible=e.fen("deductible"))
    return AssistanceRules(annual_cap=annual_cap, categories=cats)


def _top_up(r: _Reader) -> TopUpRules:
    return TopUpRules(
        target_ratio_bp=r.ratio("target_ratio"),
        categories=r.categories("categories", required=True),
        base=r.string("base", False, TOP_UP_BASES) or "total",
    )


def _deposit_waiver(r: _Reader) -> DepositWaiverRules:
    return DepositWaiverRules(
        categories=r.categories("categories", required=True),
        designated_hospitals=frozenset(r.strings("designated_hospitals")),
    )


def _codes(r: _Reader, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    out: list[str] = []
    for i, code in enumerate(r.strings(key, default)):
        norm = normalise_icd10(code)
        if not norm:
            r.fail(f"{key}[{i}]", f"ICD-10 code {code!r} is empty once spaces and dots are removed")
        if norm not in out:
            out.append(norm)
    return tuple(out)


def _days(r: _Reader, key: str, default: int, minimum: int) -> int:
    value = r.raw(key, False)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        r.fail(key, f"expected a whole number of days, found {_describe(value)}")
    if value < minimum:
        r.fail(key, f"must be ≥ {minimum}, found {value}")
    return value


def _risk(r: _Reader) -> RiskRules:
    d = _RISK_DEFAULTS
    fraction = r.ratio("oop_income_fraction", False, -1)
    return RiskRules(
        oop_threshold=r.fen("oop_threshold", minimum=1),
        oop_income_fraction_bp=None if fraction < 0 else fraction,
        watch_general_population=r.boolean("watch_general_population"),
        burden_categories=frozenset(r.strings("burden_categories", d.burden_categories,
                                              CATEGORIES, "category")),
        watched_categories=frozenset(r.strings("watched_categories", d.watched_categories,
                                               CATEGORIES, "category")),
        major_disease_codes=_codes(r, "major_disease_codes", ()),
        chronic_codes=_codes(r, "chronic_codes", d.chronic_codes),
        signing_grace_days=_days(r, "signing_grace_days", d.signing_grace_days, 0),
        followup_days=_days(r, "followup_days", d.followup_days, 1),
        gap_facility_kinds=frozenset(r.strings("gap_facility_kinds", d.gap_facility_kinds,
                                               FACILITY_KINDS, "facility kind")),
    )


def _routes(r: _Reader) -> tuple[Route, ...]:
    rows = r.raw("route", False)
    if rows is None:
        return ()
    if not isinstance(rows, list):
        r.fail("route", f"expected [[referrals.route]] rows, found {_describe(rows)}")
    routes: list[Route] = []
    seen: set[tuple[str, str, str]] = set()
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            r.fail(f"route[{i}]", f"expected a table, found {_describe(row)}")
        t = _Reader(r.file, r.key(f"route[{i}]"), row, ("flag", "department", "type", "sla_days"))
        flag = t.string("flag", choices=FLAG_KINDS)
        department = t.string("department", choices=DEPARTMENTS)
        kind = t.string("type")
        sla = t.raw("sla_days", True)
        if isinstance(sla, bool) or not isinstance(sla, int):
            t.fail("sla_days", f"expected a whole number of days, found {_describe(sla)}")
        if sla < 1:
            t.fail("sla_days", f"must be ≥ 1, found {sla}")
        assert flag and department and kind
        if (flag, department, kind) in seen:
            r.fail(f"route[{i}]", f"duplicate route ({flag}, {department}, {kind})")
        seen.add((flag, department, kind))
        routes.append(Route(flag, department, kind, sla))
    return tuple(routes)


_SECTION_KEYS: dict[str, tuple[str, ...]] = {
    "basic": ("deductible", "ratio", "out_of_county_unreferred_delta", "annual_cap", "special_categories",
              "special_ratio_bonus", "special_bonus_scope", "special_deductible_factor"),
    "critical": ("deductible", "tiers", "annual_cap", "special_categories", "special_deductible_factor",
                 "special_ratio_bonus", "special_no_cap"),
    "assistance": ("annual_cap", "categories"),
    "top_up": ("target_ratio", "categories", "base"),
    "deposit_waiver": ("categories", "designated_hospitals"),
    "risk": ("oop_threshold", "oop_income_fraction", "watch_general_population", "burden_categories",
             "watched_categories", "major_disease_codes", "chronic_codes", "signing_grace_days",
             "followup_days", "gap_facility_kinds"),
    "referrals": ("route",),
}
_SECTION_PARSERS: dict[str, Callable[[_Reader], Any]] = {
    "basic": _basic, "critical": _critical, "assistance": _assistance, "top_up": _top_up,
    "deposit_waiver": _deposit_waiver, "risk": _risk, "referrals": _routes,
}


# ---------------------------------------------------------------- public API


def parse_policy(data: Mapping[str, Any], source: str = "<memory>") -> Policy:
    """Build a Policy from already-parsed TOML (``tomllib.loads`` output); ``source`` names it in errors."""
    top = _Reader(source, "", data, SECTIONS)
    head = top.sub("policy", ("region", "name", "effective_from", "effective_to", "illustrative"))
    assert head is not None
    fields = _policy_head(head)
    parts: dict[str, Any] = {}
    for section, parse in _SECTION_PARSERS.items():
        reader = top.sub(section, _SECTION_KEYS[section], required=False)
        if reader is not None:
            parts[section] = parse(reader)
    routes = parts.pop("referrals", DEFAULT_ROUTES)
    return Policy(**fields, **parts, routes=routes, source=source)


def load_policy(path: str | Path) -> Policy:
    """Read and validate one policy TOML file; any problem is a PolicyError naming file and key."""
    file = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise PolicyError(file, "(file)", f"cannot read policy file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise PolicyError(file, "(file)", f"not UTF-8 text: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(file, "(toml)", f"TOML syntax error: {exc}") from None
    return parse_policy(data, file)


def load_policies(dir_or_paths: str | Path | Iterable[str | Path]) -> list[Policy]:
    """Load a directory's ``*.toml`` (sorted by name), one file, or an explicit list of files."""
    if isinstance(dir_or_paths, str | Path):
        p = Path(dir_or_paths)
        paths: list[Path] = sorted(p.glob("*.toml")) if p.is_dir() else [p]
    else:
        paths = [Path(x) for x in dir_or_paths]
    return [load_policy(x) for x in paths]


def select_policy(policies: Iterable[Policy], insured_region: str | None, day: date) -> Policy | None:
    """§2: the covering policy whose region is the longest prefix of the insured region, else None.

    Both codes are compared with trailing zero pairs stripped (``530000`` → ``53``). Without an
    insured region (``hub settle`` with a PERSON.json lacking one) any policy covering ``day``
    qualifies. Ties (same prefix length) go to the latest ``effective_from``, then to file order.
    """
    target = strip_region(insured_region) if insured_region is not None else None
    best: Policy | None = None
    best_key: tuple[int, date] | None = None
    for policy in policies:
        if not policy.covers(day):
            continue
        prefix = policy.region_prefix
        if target is not None and not target.startswith(prefix):
            continue
        key = (len(prefix) if target is not None else 0, policy.effective_from)
        if best_key is None or key > best_key:
            best, best_key = policy, key
    return best
