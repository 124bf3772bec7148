"""防止因病返贫致贫监测预警 — the monitoring state machine of policy-spec §4–§6.

Public surface (everything else is internal):

* ``parse_input(obj) -> MonitorInput`` — validate one decoded JSON record (§7), raising
  ``hub.errors.ValidationError`` for ``invalid_input``;
* ``MonitorEngine(policy, persons=None, facilities=None, state=None)`` with
  ``apply(input) -> list[Output]``, ``advance_to(time) -> list[Output]``, ``state_dict()``,
  ``rebuild_due_index()`` and ``clock``;
* the outputs (``DepositDecision``, ``FlagEvent``, ``ReferralEvent``, ``Escalation``,
  ``MismatchEvent``, ``InputRefused``), each with ``to_json()`` and ``output_id``;
* the subject states (``PersonState``, ``FacilityState``) and ``JsonStore`` to keep them in a
  JSON-valued table; ``referral_subject`` to route a referral update to its subject's partition.
"""

from hub.policy.monitor.engine import MonitorEngine
from hub.policy.monitor.inputs import INPUT_TYPES, MonitorInput, parse_input
from hub.policy.monitor.outputs import (
    DepositDecision,
    Escalation,
    FlagEvent,
    InputRefused,
    MismatchEvent,
    Output,
    ReferralEvent,
    error_line,
)
from hub.policy.monitor.referrals import referral_subject
from hub.policy.monitor.state import FacilityState, PersonState
from hub.policy.monitor.store import JsonStore

__all__ = [
    "INPUT_TYPES",
    "DepositDecision",
    "Escalation",
    "FacilityState",
    "FlagEvent",
    "InputRefused",
    "JsonStore",
    "MismatchEvent",
    "MonitorEngine",
    "MonitorInput",
    "Output",
    "PersonState",
    "ReferralEvent",
    "error_line",
    "parse_input",
    "referral_subject",
]
