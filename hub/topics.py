"""The topic catalogue: the one place that knows topic names, keys, partitions and retention.

Every other module (broker set-up, ``hub doctor``, processors, connectors, deploy manifests) reads
this list, so a topic cannot exist in one place and be missing in another. Every joined input has
the same partition count (co-partitioning by ``person_token``), and every topic is created before
any worker starts: a topic auto-created by a metadata request gets one partition and faust then
refuses it (broker-notes.md).
"""

from __future__ import annotations

from dataclasses import dataclass

PARTITIONS = 4
"""Partitions of every person-keyed topic; bounds the number of useful workers."""


@dataclass(frozen=True)
class Topic:
    name: str
    schema: str  # Avro full name in schemas/ of the value
    key: str  # what the record key holds
    producer: str
    compacted: bool = False
    partitions: int = PARTITIONS
    retention_ms: int | None = 7 * 24 * 3600 * 1000
    doc: str = ""

    @property
    def config(self) -> dict[str, str]:
        """Broker topic configuration, as strings (what CreateTopics takes)."""
        cfg = {"cleanup.policy": "compact" if self.compacted else "delete"}
        if self.retention_ms is not None and not self.compacted:
            cfg["retention.ms"] = str(self.retention_ms)
        return cfg


_YEAR = 365 * 24 * 3600 * 1000

CATALOGUE: tuple[Topic, ...] = (
    Topic("revitalization.poverty-status.v1", "hub.revitalization.PovertyStatusChanged", "person_token",
          "revitalization connector", compacted=True, doc="脱贫人口/监测对象 roster changes"),
    Topic("civil-affairs.assistance-status.v1", "hub.civil_affairs.AssistanceStatusChanged", "person_token",
          "civil-affairs connector", compacted=True, doc="农村低保/特困人员 roster changes"),
    Topic("insurance.enrollments.v1", "hub.insurance.EnrollmentChanged", "person_token",
          "insurance connector", compacted=True, doc="参保 per calendar year"),
    Topic("health.admissions.v1", "hub.health.AdmissionRegistered", "person_token",
          "hospital connector / counter API", retention_ms=_YEAR),
    Topic("health.discharges.v1", "hub.health.DischargeSettlementRequested", "person_token",
          "hospital connector / counter API", retention_ms=_YEAR, doc="also reversals (冲正)"),
    Topic("health.diagnoses.v1", "hub.health.DiagnosisRecorded", "person_token", "health connector",
          retention_ms=_YEAR),
    Topic("health.family-doctor.v1", "hub.health.FamilyDoctorEvent", "person_token", "health connector",
          retention_ms=_YEAR, doc="contracts and follow-ups"),
    Topic("health.facilities.v1", "hub.health.FacilityStaffingChanged", "facility_code", "health connector",
          compacted=True),
    Topic("health.payment-defaults.v1", "hub.health.PaymentDefaultChanged", "person_token",
          "hospital connector", compacted=True, doc="blacklist on / off"),
    Topic("department.referral-updates.v1", "hub.department.ReferralUpdated", "person_token",
          "every department's connector", retention_ms=_YEAR),
    Topic("hub.deposit-decisions.v1", "hub.outputs.DepositDecision", "person_token", "settlement processor",
          retention_ms=_YEAR),
    Topic("hub.settlements.v1", "hub.outputs.Settlement", "person_token", "settlement processor",
          retention_ms=_YEAR),
    Topic("hub.risk-flags.v1", "hub.outputs.RiskFlagChanged", "person_token", "risk processor",
          retention_ms=_YEAR, doc="keyed by facility code for facility_gap"),
    Topic("hub.referrals.v1", "hub.outputs.ReferralChanged", "person_token", "referral processor",
          retention_ms=_YEAR, doc="and escalations"),
    Topic("hub.mismatches.v1", "hub.outputs.MismatchChanged", "person_token", "risk processor",
          retention_ms=_YEAR),
    Topic("hub.dead-letters.v1", "hub.outputs.DeadLetter", "source key", "everyone", retention_ms=4 * _YEAR,
          doc="original bytes (encrypted when from the edge) + reason + source"),
)

BY_NAME: dict[str, Topic] = {t.name: t for t in CATALOGUE}

INPUT_TOPICS = tuple(t.name for t in CATALOGUE if not t.name.startswith("hub."))
OUTPUT_TOPICS = tuple(t.name for t in CATALOGUE if t.name.startswith("hub."))
DEAD_LETTERS = "hub.dead-letters.v1"
CONNECTOR_OFFSETS = Topic(
    "hub.connector-offsets.v1", "", "connector name + source partition", "connector runner",
    compacted=True, partitions=1, doc="source offsets of connectors (JSON), compacted",
)


MERGE_RANK: dict[str, int] = {
    "revitalization.poverty-status.v1": 1,
    "civil-affairs.assistance-status.v1": 2,
    "insurance.enrollments.v1": 3,
    "health.facilities.v1": 4,
    "health.family-doctor.v1": 5,
    "health.diagnoses.v1": 6,
    "health.payment-defaults.v1": 7,
    "health.admissions.v1": 8,
    "health.discharges.v1": 9,
    "department.referral-updates.v1": 10,
}
"""policy-spec §8.1: how inputs with equal event times are ordered (rosters first, referral answers last)."""

APP_ID = "health-relief-hub"
"""Default application id (``HUB_APP_ID``): the consumer group and the prefix of the worker's own topics."""


def internal_topics(app_id: str = APP_ID) -> tuple[Topic, ...]:
    """Topics the worker owns: its state changelog, compacted, one partition per task."""
    return (Topic(f"{app_id}-person-state", "", "state key", "person processor", compacted=True,
                  retention_ms=None, doc="the person processor's state: subjects, ledgers, clock, offsets"),)


def state_topic(app_id: str = APP_ID) -> Topic:
    """The person processor's state changelog (see :func:`internal_topics`)."""
    return internal_topics(app_id)[0]


PROBE_RETENTION_MS = 3600 * 1000


def probe_topic(app_id: str = APP_ID) -> Topic:
    """The conformance probe's topic (hub.doctor), pre-created like every other topic.

    Why not a scratch topic per run: the worker runs the probe at every start, and a worker that may
    create and delete topics is a worker that may delete settlements. The probe writes here instead
    (acks=all, the configured replication), and one hour of retention keeps it small.
    """
    return Topic(f"{app_id}-probe", "", "probe run id", "conformance probe", partitions=2,
                 retention_ms=PROBE_RETENTION_MS, doc="hub doctor / worker start-up probe records")


def hub_topics(app_id: str = APP_ID) -> tuple[Topic, ...]:
    """Every topic a deployment of the hub needs, created before any process starts.

    The catalogue, the connectors' offsets, the worker's internal topics and the probe's topic: what
    ``hub.broker.ensure_topics`` creates, ``hub doctor`` checks and deploy/ pre-creates in production.
    """
    return (*CATALOGUE, CONNECTOR_OFFSETS, *internal_topics(app_id), probe_topic(app_id))


def transactional_ids(app_id: str = APP_ID) -> tuple[str, ...]:
    """transactional.id of each task's producer (one per partition: zombie fencing per task)."""
    return tuple(f"{app_id}-person-{p}" for p in range(PARTITIONS))


def get(name: str) -> Topic:
    """The catalogue entry of ``name``; a clear error for a typo."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown topic {name!r}; known: {', '.join(sorted(BY_NAME))}") from None
