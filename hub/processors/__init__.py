"""Stream processors: the person processor's pure rules, and the shells that feed them.

* :mod:`hub.processors.person` — the rules over one task's ordered records (pure);
* :mod:`hub.processors.merge`, :mod:`~hub.processors.dedupe`, :mod:`~hub.processors.task` — §8's merge by
  event time, re-sent ids, and a task's state with its save and restore (pure);
* :mod:`hub.processors.stream` — the live shell inside the faust worker (aiokafka, transactions);
* :mod:`hub.processors.replay` — ``hub replay``, the reference run of the same rules (no broker).

``build_logic`` reads the policies and settings both shells use; ``register_all`` puts the live shell
into a faust app.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import faust

log = logging.getLogger(__name__)

PERSON_INPUTS = (
    "revitalization.poverty-status.v1",
    "civil-affairs.assistance-status.v1",
    "insurance.enrollments.v1",
    "health.admissions.v1",
    "health.discharges.v1",
    "health.diagnoses.v1",
    "health.family-doctor.v1",
    "health.facilities.v1",
    "health.payment-defaults.v1",
    "department.referral-updates.v1",
)



def load_policies() -> list[Any]:
    """Every policy of HUB_POLICY_DIR (default: the bundled regions)."""
    from hub.config import get_settings
    from hub.policy.loader import load_policies as load

    folder = get_settings().policy_dir or Path(__file__).resolve().parent.parent / "policy" / "regions"
    return load(folder)


def home_region() -> str:
    """HUB_REGION: the deployment's home pooling region (default 532503, Mengzi, the simulated county)."""
    from hub.config import get_settings

    return get_settings().region


def build_logic(metrics: Any = None) -> Any:
    """The person processor's rules with the deployment's policies and home region (§8.4)."""
    from hub.policy.timeline import PolicyTimeline
    from hub.processors.person import PersonLogic

    policies = load_policies()
    return PersonLogic(policies, PolicyTimeline(policies, home_region()), metrics=metrics)


def policy_expiry_warnings(today: date | None = None, within_days: int = 30) -> list[str]:
    """Warnings for a home-region policy that has ended or ends within ``within_days`` (a live hub needs one)."""
    from hub.policy.timeline import PolicyTimeline

    today = today or date.today()
    timeline = PolicyTimeline(load_policies(), home_region())
    policy = timeline.in_force(today)
    if policy is None:
        nearest, _ = timeline.lookup(today)
        return [f"no policy of the home region {home_region()} is in force today ({today}); the nearest one "
                f"({nearest.name}, {nearest.effective_from}–{nearest.effective_to}) stands in, and discharges "
                f"of today find no policy: add this period's policy file to HUB_POLICY_DIR"]
    if policy.effective_to is not None and policy.effective_to - today <= timedelta(days=within_days):
        return [f"the home region's policy {policy.name} ({policy.region}) ends on {policy.effective_to}, in "
                f"{(policy.effective_to - today).days} day(s): add the next period's policy file"]
    return []


def register_all(app: faust.App, bootstrap: str, app_id: str) -> type:
    """Add the person processor's live shell to ``app`` as a service (started with the app); returns its class."""
    from hub.config import get_settings
    from hub.metrics import METRICS
    from hub.processors.stream import PersonStream, StreamOptions

    settings = get_settings()
    logic = build_logic(metrics=METRICS)
    # Live, the wall clock advances event time so escalations fire on a quiet day (§5.1, §8.3). `hub up`'s
    # accelerated simulator runs on event time only: HUB_WALL_CLOCK=0.
    options = StreamOptions(app_id=app_id, batch_max=settings.batch_max, tick_seconds=settings.tick_seconds,
                            wall_clock=settings.wall_clock, store=settings.store,
                            data_dir=Path(settings.data_dir) / "worker")
    for warning in policy_expiry_warnings():
        log.warning("policy: %s", warning)

    class PersonProcessor(PersonStream):
        """The person processor of this app (faust instantiates services with ``loop`` and ``beacon``)."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(bootstrap, logic, options, metrics=METRICS, **kwargs)

    return app.service(PersonProcessor)
