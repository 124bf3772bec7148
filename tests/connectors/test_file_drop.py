"""file_drop against the embedded broker, with department files as they really arrive."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from connectors.examples.make_samples import synthetic_id, write_samples
from connectors.sdk import testkit
from connectors.sdk.records import Rejected, SourceRecord
from hub.deadletter import decrypt_original

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).parents[2] / "connectors" / "examples"


def example(tmp_path: Path, config: str, **overrides: object) -> object:
    """The example YAML copied beside freshly written sample files, with a unique name."""
    write_samples(tmp_path)
    shutil.copy(EXAMPLES / config, tmp_path / config)
    return testkit.from_yaml(tmp_path / config, name=testkit.unique_name(config.split(".")[0].replace("_", "-")),
                             settle_seconds=0, **overrides)


def test_gbk_csv_with_title_rows_and_blank_lines_becomes_events(kafka_bootstrap: str, tmp_path: Path) -> None:
    src = example(tmp_path, "civil_affairs_roster.yaml")
    stats = testkit.run_source(src, kafka_bootstrap)
    # 15-digit and 5.30102E+17 ID numbers, 五保户: rejected; ="…" and a trailing full-width space: read
    assert (stats.produced, stats.rejected) == (5, 3)
    got = [r for r in testkit.read_topic(kafka_bootstrap, "civil-affairs.assistance-status.v1")
           if r.key in {testkit.token(synthetic_id(n)) for n in (11, 12, 2, 15, 16)}]
    by_person = {r.key: r.value for r in got}
    assert by_person[testkit.token(synthetic_id(15))]["categories"] == ["minimum_living"]
    assert by_person[testkit.token(synthetic_id(16))]["categories"] == ["extreme_poverty"]
    assert by_person[testkit.token(synthetic_id(11))]["categories"] == ["minimum_living"]
    assert by_person[testkit.token(synthetic_id(12))]["categories"] == ["extreme_poverty"]
    assert all(v["region_code"] == "530102" for v in by_person.values())
    assert str(by_person[testkit.token(synthetic_id(12))]["occurred_at"]) == "2024-03-04 00:00:00+08:00"


def test_no_raw_id_number_reaches_a_hub_topic(kafka_bootstrap: str, tmp_path: Path) -> None:
    src = example(tmp_path, "revitalization_roster.yaml")
    testkit.run_source(src, kafka_bootstrap)
    raw = [synthetic_id(n) for n in range(1, 10)]
    for topic in ("revitalization.poverty-status.v1", "hub.dead-letters.v1"):
        for r in testkit.read_topic(kafka_bootstrap, topic):
            text = repr(r.value) + repr(r.key)
            assert not any(n in text or n[:17] in text for n in raw), topic


def test_xlsx_with_merged_title_maps_categories_and_income(kafka_bootstrap: str, tmp_path: Path) -> None:
    src = example(tmp_path, "revitalization_roster.yaml")
    stats = testkit.run_source(src, kafka_bootstrap)
    # a mistyped ID number; 低保户 is not a revitalization word; an ID number saved as an Excel number
    assert (stats.produced, stats.rejected) == (5, 3)
    values = {r.key: r.value for r in testkit.read_topic(kafka_bootstrap, "revitalization.poverty-status.v1")}
    second = values[testkit.token(synthetic_id(2))]
    assert second["categories"] == ["monitored", "poverty_alleviated"]
    assert second["household_income_fen"] == 865050
    assert values[testkit.token(synthetic_id(3))]["categories"] == ["monitored"]
    sixth = values[testkit.token(synthetic_id(6))]
    assert sixth["categories"] == [] and sixth["household_income_fen"] is None
    eighth = values[testkit.token(synthetic_id(8))]  # full-width digits; the date an Excel serial
    assert eighth["categories"] == ["monitored"] and str(eighth["occurred_at"]) == "2024-03-04 00:00:00+08:00"


def test_rejected_rows_go_to_dead_letters_encrypted_and_to_a_report(kafka_bootstrap: str, tmp_path: Path) -> None:
    src = example(tmp_path, "revitalization_roster.yaml")
    testkit.run_source(src, kafka_bootstrap)
    letters = testkit.dead_letters(kafka_bootstrap, src.config.name)
    assert sorted(d["reason"] for d in letters) == ["invalid_id_number", "invalid_id_number", "invalid_input"]
    for d in letters:
        assert d["original_encrypted"] is True
        assert synthetic_id(4)[:17] not in d["detail"]
    bad_id = next(d for d in letters if d["reason"] == "invalid_id_number")
    original = decrypt_original(bad_id, testkit.TEST_EDGE_KEY).decode()
    assert synthetic_id(4)[:17] in original and "赵文" in original  # the clerk can fix the row
    processed = tmp_path / "samples" / "revitalization" / "processed"
    assert not list((tmp_path / "samples" / "revitalization").glob("*.xlsx"))  # moved aside
    report = next(processed.glob("*.rejects.csv"))
    with report.open(encoding="utf-8-sig") as f:
        lines = list(csv.reader(f))
    assert [row[0] for row in lines[1:]] == ["8", "9", "11"]  # rows as Excel numbers them
    assert "not text" in lines[3][2]  # the Excel number: refused, never converted
    # The report names the column and what was expected, never the cell (a shifted row can put an ID
    # number or a name in any column); the clerk finds the cell by row and column.
    assert "人员类别" in lines[2][2] and "unknown category" in lines[2][2] and "低保户" not in lines[2][2]


def test_same_file_dropped_twice_is_not_sent_again(kafka_bootstrap: str, tmp_path: Path) -> None:
    src = example(tmp_path, "civil_affairs_roster.yaml")
    sample = next((tmp_path / "samples" / "civil_affairs").glob("*.csv"))
    copy = tmp_path / "again.csv"
    shutil.copy(sample, copy)
    assert testkit.run_source(src, kafka_bootstrap).produced == 5
    shutil.copy(copy, sample)  # the clerk sends the same export again
    again = testkit.from_yaml(tmp_path / "civil_affairs_roster.yaml", name=src.config.name, settle_seconds=0)
    assert testkit.run_source(again, kafka_bootstrap).produced == 0
    moved = [p for p in (tmp_path / "samples" / "civil_affairs" / "processed").glob("*.csv")
             if not p.name.endswith(".rejects.csv")]
    assert len(moved) == 2


def test_unreadable_file_is_dead_lettered_and_moved(kafka_bootstrap: str, tmp_path: Path) -> None:
    src = example(tmp_path, "civil_affairs_roster.yaml")
    (tmp_path / "samples" / "civil_affairs" / "wrong.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    stats = testkit.run_source(src, kafka_bootstrap)
    assert stats.rejected == 4  # the three bad rows, and the file without the expected header
    letters = testkit.dead_letters(kafka_bootstrap, src.config.name)
    assert any(d["reason"] == "unreadable_file" and "no header row" in d["detail"] for d in letters)
    assert (tmp_path / "samples" / "civil_affairs" / "processed" / "wrong.csv").exists()


def test_poll_without_a_broker_yields_records_and_offsets(tmp_path: Path) -> None:
    src = example(tmp_path, "family_doctor.yaml")
    items = testkit.poll_all(src)
    kinds = [(type(i).__name__, i.value["kind"] if isinstance(i, SourceRecord) else i.reason) for i, _ in items]
    assert kinds == [("SourceRecord", "contract"), ("SourceRecord", "followup"), ("SourceRecord", "contract"),
                     ("Rejected", "invalid_input")]
    assert items[0][0].value["active"] is True and items[1][0].value["active"] is None
    assert items[2][0].value["active"] is False
    assert [o.position for _, o in items][-1] == {"row": 5, "done": True}
    rejected = items[3][0]
    assert isinstance(rejected, Rejected) and "服务类型" in rejected.detail and "体检" not in rejected.detail
