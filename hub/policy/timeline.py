"""Which home-region policy governs the monitoring rules on a given date (policy-spec §8.4).

Why a timeline and not one policy chosen at start-up: the ``[deposit_waiver]``, ``[risk]`` and
``[referrals]`` sections of a deployment's home region change with its policy periods, and a stream
replaying last year's records must judge them by last year's rules, never by today's. So the rules
ask for the policy *of the input's date* (event time), and the answer is the same whenever and
however often the input is processed.

Where no policy of the home region covers a date, the one whose period is nearest stands in, and the
timeline remembers that it did (``fallbacks``), so the shell can report it (a log line and a metric):
a silent fallback would hide an expired policy file.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import date

from hub.errors import PolicyError
from hub.policy.loader import select_policy
from hub.policy.model import Policy, strip_region

__all__ = ["PolicyTimeline", "days_apart"]


def days_apart(policy: Policy, day: date) -> int:
    """Days from ``day`` to the policy's period: 0 inside it, else the distance to its nearest end."""
    if day < policy.effective_from:
        return (policy.effective_from - day).days
    if policy.effective_to is not None and day > policy.effective_to:
        return (day - policy.effective_to).days
    return 0


class PolicyTimeline:
    """The home region's policies over time: ``at(day)`` is the policy in force on ``day``.

    Pure and memoised per day (a stream asks once per input). ``fallbacks`` counts, per
    ``(region, day)``, the days for which no policy was in force and the nearest one stood in.
    """

    def __init__(self, policies: Iterable[Policy], home_region: str) -> None:
        self.policies: Sequence[Policy] = tuple(policies)
        self.home_region = home_region
        target = strip_region(home_region)
        self._home = [p for p in self.policies if target.startswith(p.region_prefix)]
        if not self._home:
            raise PolicyError("<policies>", "region", f"no policy file covers the home region {home_region} "
                              f"(HUB_REGION); known regions: {sorted({p.region for p in self.policies})}")
        self._memo: dict[date, tuple[Policy, bool]] = {}
        self.fallbacks: Counter[tuple[str, date]] = Counter()

    @classmethod
    def constant(cls, policy: Policy) -> PolicyTimeline:
        """One policy for every date (``hub monitor``: one policy file governs every input, §7)."""
        timeline = cls([policy], policy.region)
        timeline._constant = policy  # noqa: SLF001 - set once here
        return timeline

    _constant: Policy | None = None

    @property
    def home_policies(self) -> tuple[Policy, ...]:
        """The home region's policies, every period (e.g. what departments its referrals can address)."""
        return tuple(self._home)

    def lookup(self, day: date) -> tuple[Policy, bool]:
        """(policy, stood_in): the policy for ``day`` and whether it is only the nearest one."""
        if self._constant is not None:
            return self._constant, False
        found = self._memo.get(day)
        if found is None:
            policy = select_policy(self._home, self.home_region, day)
            if policy is not None:
                found = (policy, False)
            else:  # nearest period; on a tie the later period, then the longer prefix
                policy = min(self._home, key=lambda p: (days_apart(p, day), -p.effective_from.toordinal(),
                                                        -len(p.region_prefix)))
                found = (policy, True)
            if len(self._memo) > 50_000:
                self._memo.clear()
            self._memo[day] = found
        return found

    def at(self, day: date) -> Policy:
        """The policy governing ``day``; counts a fallback when it is only the nearest."""
        policy, stood_in = self.lookup(day)
        if stood_in:
            self.fallbacks[(policy.region, day)] += 1
        return policy

    def in_force(self, day: date) -> Policy | None:
        """The home policy in force on ``day``, or None (no fallback): for expiry warnings."""
        return select_policy(self._home, self.home_region, day)
