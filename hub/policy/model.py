"""Policy data as loaded from a region's TOML file (policy-spec §2, §5.3, §6.1).

Ratios are held as whole basis points (``*_bp``), amounts as integer fen, so the settlement and
risk arithmetic never touches a float. Instances are immutable: one loaded policy is shared by
every discharge it governs. ``hub.policy.loader`` builds these; the rule code only reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

LEVELS = ("L1", "L2", "L3")
CATEGORIES = ("extreme_poverty", "minimum_living", "monitored", "poverty_alleviated")
"""All categories, highest medical-assistance priority first (§1)."""

CATEGORY_OWNER = {
    "poverty_alleviated": "revitalization",
    "monitored": "revitalization",
    "minimum_living": "civil_affairs",
    "extreme_poverty": "civil_affairs",
}
DEPARTMENTS = ("health", "insurance", "civil_affairs", "revitalization", "charity")
FACILITY_KINDS = ("village_clinic", "township_center", "community_center", "hospital")
FLAG_KINDS = (
    "high_medical_burden",
    "major_disease",
    "chronic_unsigned",
    "followup_overdue",
    "uninsured",
    "facility_gap",
)


@dataclass(frozen=True)
class BasicRules:
    """城乡居民基本医保统筹基金 — basic medical insurance fund."""

    deductible: dict[str, int]
    ratio_bp: dict[str, int]
    annual_cap: int
    out_of_county_unreferred_delta_bp: int = 0
    special_categories: frozenset[str] = frozenset()
    special_ratio_bonus_bp: int = 0
    special_bonus_scope: str = "all"  # "all" | "in_county_or_referred"
    special_deductible_factor_bp: int = 10000


@dataclass(frozen=True)
class Tier:
    """One band of the critical-illness schedule; ``up_to`` is None on the last, open band."""

    up_to: int | None
    ratio_bp: int


@dataclass(frozen=True)
class CriticalRules:
    """大病保险 — critical-illness insurance on cumulative residual in-policy cost."""

    deductible: int
    tiers: tuple[Tier, ...]
    annual_cap: int
    special_categories: frozenset[str] = frozenset()
    special_deductible_factor_bp: int = 10000
    special_ratio_bonus_bp: int = 0
    special_no_cap: bool = False


@dataclass(frozen=True)
class AssistanceCategory:
    ratio_bp: int
    deductible: int


@dataclass(frozen=True)
class AssistanceRules:
    """医疗救助 — medical assistance, by the person's highest-priority category."""

    annual_cap: int
    categories: dict[str, AssistanceCategory] = field(default_factory=dict)


@dataclass(frozen=True)
class TopUpRules:
    """兜底 — tops the actual reimbursement ratio up to a target."""

    target_ratio_bp: int
    categories: frozenset[str]
    base: str = "total"  # "total" | "in_policy"


@dataclass(frozen=True)
class DepositWaiverRules:
    """先诊疗后付费 — no deposit at admission for these categories at designated hospitals."""

    categories: frozenset[str]
    designated_hospitals: frozenset[str] = frozenset()


@dataclass(frozen=True)
class RiskRules:
    """防止因病返贫致贫监测预警 — thresholds of the six risk flags (§5.3)."""

    oop_threshold: int
    oop_income_fraction_bp: int | None = None
    watch_general_population: bool = False
    burden_categories: frozenset[str] = frozenset({"poverty_alleviated", "monitored"})
    watched_categories: frozenset[str] = frozenset(CATEGORIES)
    major_disease_codes: tuple[str, ...] = ()
    chronic_codes: tuple[str, ...] = (
        "I10", "I11", "I12", "I13", "I15", "E11", "A15", "A16", "A17", "A18", "A19", "F20", "F25", "F31",
    )
    signing_grace_days: int = 30
    followup_days: int = 90
    gap_facility_kinds: frozenset[str] = frozenset({"village_clinic", "township_center"})


@dataclass(frozen=True)
class Route:
    """One row of the referral routing table (§6.1)."""

    flag: str
    department: str
    type: str
    sla_days: int


DEFAULT_ROUTES: tuple[Route, ...] = (
    Route("high_medical_burden", "civil_affairs", "medical_assistance", 7),
    Route("high_medical_burden", "civil_affairs", "temporary_assistance", 7),
    Route("high_medical_burden", "revitalization", "monitoring_enrollment", 15),
    Route("high_medical_burden", "charity", "charity_assistance", 15),
    Route("major_disease", "health", "special_treatment", 7),
    Route("chronic_unsigned", "health", "family_doctor_signing", 30),
    Route("followup_overdue", "health", "follow_up_visit", 14),
    Route("uninsured", "insurance", "enrollment", 15),
    Route("uninsured", "civil_affairs", "premium_subsidy", 15),
    Route("facility_gap", "health", "staffing", 30),
)


@dataclass(frozen=True)
class Policy:
    """One pooling region (统筹区) and period: everything the rules need, nothing else."""

    region: str
    name: str
    effective_from: date
    effective_to: date | None = None
    illustrative: bool = False
    basic: BasicRules | None = None
    critical: CriticalRules | None = None
    assistance: AssistanceRules | None = None
    top_up: TopUpRules | None = None
    deposit_waiver: DepositWaiverRules | None = None
    risk: RiskRules | None = None
    routes: tuple[Route, ...] = DEFAULT_ROUTES
    source: str = "<memory>"

    @property
    def region_prefix(self) -> str:
        """GB/T 2260 code with trailing zero pairs stripped (``530100`` → ``5301``)."""
        return strip_region(self.region)

    def covers(self, day: date) -> bool:
        """Effective dates include both ends."""
        return self.effective_from <= day and (self.effective_to is None or day <= self.effective_to)


def strip_region(code: str) -> str:
    """Strip trailing ``00`` pairs of a 6-digit GB/T 2260 code: ``530000`` → ``53``."""
    out = code
    while len(out) > 2 and out.endswith("00"):
        out = out[:-2]
    return out
