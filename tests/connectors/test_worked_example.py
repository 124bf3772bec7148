"""The README's worked example runs as written: a township diagnosis log onto health.diagnoses.v1."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from connectors.examples.make_samples import synthetic_id
from connectors.examples.worked_example.diagnoses import TownshipDiagnosesSource
from connectors.sdk import testkit

pytestmark = pytest.mark.integration
HERE = Path(__file__).parents[2] / "connectors" / "examples" / "worked_example"


def test_worked_example_end_to_end(kafka_bootstrap: str, tmp_path: Path) -> None:
    shutil.copytree(HERE, tmp_path / "we", ignore=shutil.ignore_patterns("__pycache__"))
    name = testkit.unique_name("shalang")
    source = testkit.from_yaml(tmp_path / "we" / "config.yaml", cls=TownshipDiagnosesSource, name=name)
    m = testkit.metrics()
    stats = testkit.run_source(source, kafka_bootstrap, m=m)
    assert (stats.produced, stats.rejected) == (2, 1)  # 疑似 skipped; a mistyped ID number rejected
    mine = [r for r in testkit.read_topic(kafka_bootstrap, "health.diagnoses.v1")
            if r.key in {testkit.token(synthetic_id(1)), testkit.token(synthetic_id(2))}]
    assert sorted(r.value["icd10"] for r in mine) == ["C34.1", "I10"]
    assert m.connector_records.labels(connector=name, outcome="produced")._value.get() == 2
    assert m.dead_letters.labels(source=name, reason="invalid_id_number")._value.get() == 1

    # the centre appends a line during the day: only it is read on the next run
    log = next((tmp_path / "we" / "logs").glob("*.csv"))
    with log.open("ab") as f:
        f.write(f"MZ0005,2024-03-05 11:00,张德福,{synthetic_id(1)},E11.9,2型糖尿病,确诊\r\n".encode("gbk"))
    again = testkit.from_yaml(tmp_path / "we" / "config.yaml", cls=TownshipDiagnosesSource, name=name)
    assert testkit.run_source(again, kafka_bootstrap).produced == 1
