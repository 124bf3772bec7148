"""sql_poll against a real PostgreSQL started by pytest-postgresql (Debian's pg_ctl)."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from connectors.examples.make_samples import mistyped, synthetic_id
from connectors.sdk import testkit

pytestmark = [pytest.mark.integration, pytest.mark.postgres]
EXAMPLES = Path(__file__).parents[2] / "connectors" / "examples"
T0 = datetime(2024, 1, 2, 8, 0, 0)

DDL = """
CREATE TABLE v_hub_enrollment (
    rid bigint PRIMARY KEY, certno varchar(18) NOT NULL, psn_name text, insu_year int NOT NULL,
    psn_insu_stas varchar(1) NOT NULL, rescue_type text, insu_admdvs varchar(6) NOT NULL,
    updt_time timestamp NOT NULL
)
"""


def insert(url: str, rows: list[tuple[int, str, int, str, str | None, datetime]]) -> None:
    with create_engine(url).begin() as c:
        for rid, certno, year, stas, rescue, at in rows:
            c.execute(text("INSERT INTO v_hub_enrollment VALUES (:r, :c, '某某', :y, :s, :x, '530102', :t) "
                           "ON CONFLICT (rid) DO UPDATE SET psn_insu_stas = :s, updt_time = :t"),
                      {"r": rid, "c": certno, "y": year, "s": stas, "x": rescue, "t": at})


def source(pg_url: str, tmp_path: Path, name: str, **over: object) -> object:
    shutil.copy(EXAMPLES / "insurance_enrolment.yaml", tmp_path / "insurance_enrolment.yaml")
    return testkit.from_yaml(tmp_path / "insurance_enrolment.yaml", name=name, url=pg_url, **over)


@pytest.fixture
def table(pg_url: str) -> str:
    with create_engine(pg_url).begin() as c:
        c.execute(text(DDL))
    return pg_url


def test_rows_become_enrolment_events_and_the_cursor_resumes(kafka_bootstrap: str, table: str,
                                                             tmp_path: Path) -> None:
    name = testkit.unique_name("insurance")
    same_time = T0 + timedelta(minutes=1)  # three rows share one updt_time: the key orders them
    insert(table, [(1, synthetic_id(21), 2024, "1", "特困人员", T0), (2, synthetic_id(22), 2024, "1", None, same_time),
                   (3, synthetic_id(23), 2024, "4", "无", same_time),
                   (4, mistyped(synthetic_id(24)), 2024, "1", None, same_time)])
    stats = testkit.run_source(source(table, tmp_path, name, batch_size=2), kafka_bootstrap)
    assert (stats.produced, stats.rejected) == (3, 1)
    got = {r.key: r.value for r in testkit.read_topic(kafka_bootstrap, "insurance.enrollments.v1")}
    first = got[testkit.token(synthetic_id(21))]
    assert (first["year"], first["enrolled"], first["subsidy_category"], first["insured_region"]) == \
        (2024, True, "extreme_poverty", "530102")
    assert got[testkit.token(synthetic_id(23))]["enrolled"] is False
    assert str(first["occurred_at"]) == "2024-01-02 08:00:00+08:00"

    # a restart reads only what changed since: one updated row, one new row at the same time
    insert(table, [(2, synthetic_id(22), 2024, "2", None, same_time + timedelta(hours=1)),
                   (5, synthetic_id(25), 2024, "1", None, same_time)])
    stats = testkit.run_source(source(table, tmp_path, name), kafka_bootstrap)
    assert (stats.produced, stats.rejected) == (2, 0)  # rid 5 sorts after the cursor (same_time, rid 4)
    latest = [r.value for r in testkit.read_topic(kafka_bootstrap, "insurance.enrollments.v1")
              if r.key == testkit.token(synthetic_id(22))]
    assert [v["enrolled"] for v in latest] == [True, False]


def test_a_database_that_is_down_fails_the_once_run_clearly(kafka_bootstrap: str, tmp_path: Path) -> None:
    src = source("postgresql+psycopg://nobody@127.0.0.1:1/none", tmp_path, testkit.unique_name("down"))
    with pytest.raises(Exception, match="(?i)connect"):
        testkit.run_source(src, kafka_bootstrap)
