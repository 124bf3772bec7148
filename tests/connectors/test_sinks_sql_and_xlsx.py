"""sql_upsert against a real PostgreSQL, and file_export's daily referral workbooks."""

from __future__ import annotations

import shutil
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import create_engine, text

from connectors.sdk import testkit
from hub.timeutil import SHANGHAI
from tests.connectors.test_webhook import referrals

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).parents[2] / "connectors" / "examples"
T0 = datetime(2024, 3, 5, 9, 0, tzinfo=SHANGHAI)


def settlement(discharge: str, person: str, patient: int) -> dict[str, object]:
    return {"event_id": f"s-{discharge}", "occurred_at": T0, "person_token": person, "discharge_id": discharge,
            "hospital_code": "530102H001", "discharge_date": T0.date(), "year": 2024, "basic_fen": 500000,
            "critical_fen": 0, "assistance_fen": 100000, "top_up_fen": 0, "patient_fen": patient,
            "total_fen": 600000 + patient, "actual_ratio_bp": 9000, "policy_region": "530000", "policy_name": "云南"}


@pytest.mark.postgres
def test_settlements_are_upserted_once_by_event_id(kafka_bootstrap: str, pg_url: str, tmp_path: Path) -> None:
    tag = testkit.unique_name("d")
    person = "p_" + uuid.uuid5(uuid.NAMESPACE_OID, tag).hex  # the one token shape (hub.identity)
    events = [settlement(f"{tag}-1", person, 66000), settlement(f"{tag}-2", person, 1000)]
    testkit.produce(kafka_bootstrap, "hub.settlements.v1", "hub.outputs.Settlement", events + events[:1])
    shutil.copy(EXAMPLES / "settlements_to_insurance_db.yaml", tmp_path / "s.yaml")
    sink = testkit.from_yaml(tmp_path / "s.yaml", name=testkit.unique_name("settle-db"), url=pg_url,
                             filter={"person_token": [person]})
    stats = testkit.run_sink(sink, kafka_bootstrap)
    assert stats.delivered == 3  # the redelivered copy is delivered and changes nothing
    with create_engine(pg_url).connect() as c:
        rows = c.execute(text("SELECT event_id, patient_fen, payload->>'policy_name' FROM hub_settlements "
                              "ORDER BY event_id")).all()
    assert [tuple(r) for r in rows] == [(f"s-{tag}-1", "66000", "云南"), (f"s-{tag}-2", "1000", "云南")]


def test_daily_referral_workbook_per_department(kafka_bootstrap: str, tmp_path: Path) -> None:
    kind = testkit.unique_name("medical_assistance")
    events = referrals(kind, persons=2, per_person=2)
    events[-1] = {**events[-1], "occurred_at": T0 + timedelta(days=1)}  # next day → another workbook
    testkit.produce(kafka_bootstrap, "hub.referrals.v1", "hub.outputs.ReferralChanged", events, key_field="subject")
    shutil.copy(EXAMPLES / "referral_export.yaml", tmp_path / "x.yaml")
    sink = testkit.from_yaml(tmp_path / "x.yaml", name=testkit.unique_name("export"),
                             filter={"referral_type": [kind]})
    testkit.run_sink(sink, kafka_bootstrap)
    day1 = tmp_path / "exports" / "民政" / "转介清单_2024-03-05.xlsx"
    day2 = tmp_path / "exports" / "民政" / "转介清单_2024-03-06.xlsx"
    rows = list(load_workbook(day1).active.iter_rows(min_row=2, values_only=True))
    assert rows[0][:5] == ("事件时间", "类型", "转介编号", "转介类型", "状态")
    assert sorted(r[4] for r in rows[1:]) == sorted(["待处理", "已签收", "待处理"])  # two persons: any order
    assert len(list(load_workbook(day2).active.iter_rows(min_row=3, values_only=True))) == 1
    # the same events again (a new consumer group) do not add rows
    again = testkit.from_yaml(tmp_path / "x.yaml", name=testkit.unique_name("export"), filter={"referral_type": [kind]})
    testkit.run_sink(again, kafka_bootstrap)
    assert len(list(load_workbook(day1).active.iter_rows(min_row=3, values_only=True))) == 3
