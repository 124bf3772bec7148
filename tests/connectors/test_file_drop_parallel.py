"""A large file mapped by worker processes gives exactly what the connector's own process gives.

``file_drop`` hands the rows of a file with ``parallel_rows`` rows or more to ``workers`` processes
(connectors/sdk/parallel.py). Differential: the same roster — good rows, mistyped and Excel-rounded ID numbers,
unknown categories, impossible dates, an empty key — polled once serially (``workers: 0``) and once in parallel
must yield the same items in the same order (records by their encoded event, rejects by reason, column and
original), the same offsets, and the same rejects report.
"""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path
from typing import Any

from connectors.examples.make_samples import CIVIL_HEADER, synthetic_id
from connectors.sdk import testkit
from connectors.sdk.records import Rejected, SourceRecord
from connectors.sdk.runner import checked_value
from connectors.sources.file_drop import FileDropSource

MAPPING = {
    "natural_key": ["身份证号码", "审批日期"],
    "fields": {
        "person_token": {"column": "身份证号码", "type": "id_number"},
        "occurred_at": {"column": "审批日期", "type": "datetime"},
        "categories": {"column": "救助类别", "type": "categories",
                       "values": {"农村低保": "minimum_living", "特困人员": "extreme_poverty", "退出": None}},
        "region_code": {"column": "行政区划代码", "type": "str"},
    },
}


def _roster(rows: int, seed: int) -> bytes:
    rng = random.Random(seed)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(["蒙自市农村低保、特困人员花名册"] + [""] * (len(CIVIL_HEADER) - 1))
    w.writerow(CIVIL_HEADER)
    for i in range(rows):
        number = synthetic_id(i, region="532503", born=f"19{50 + i % 50}0101")
        fault = rng.random()
        if fault < 0.03:
            number = number[:17] + ("0" if number[17] != "0" else "1")  # mistyped check character
        elif fault < 0.05:
            number = "5.32503E+17"  # what Excel writes for a number
        elif fault < 0.06:
            number = ""
        category = rng.choice(["农村低保", "特困人员", "退出", "五保户" if fault > 0.98 else "农村低保"])
        day = "2024-02-30" if 0.06 < fault < 0.07 else f"2024-03-{1 + i % 28:02d}"
        w.writerow([i + 1, "张三", "男", number, category, 1, "450", "532503", day])
    return buf.getvalue().encode("gbk")


def _poll(tmp: Path, data: bytes, workers: int) -> tuple[list[tuple[Any, ...]], list[list[str]]]:
    """Items (records by their encoded event), offsets and the rejects report of one poll of the roster."""
    inbox = tmp / f"in-{workers}"
    inbox.mkdir()
    (inbox / "花名册.csv").write_bytes(data)
    src = testkit.build(FileDropSource, {"name": testkit.unique_name("par"), "connector": "file_drop",
                                         "department": "civil_affairs", "topic": "civil-affairs.assistance-status.v1",
                                         "source_id": "roster", "inbox": str(inbox), "settle_seconds": 0,
                                         "mapping": MAPPING, "workers": workers, "parallel_rows": 50})
    items = testkit.poll_all(src)
    src.committed({o.partition: o.position for _, o in items if o is not None})
    out = []
    for item, offset in items:
        assert offset is not None
        if isinstance(item, SourceRecord):
            assert (item.encoded is not None) == (workers > 0)  # encoded in a worker, or here
            out.append(("record", item.key, checked_value(src.config.schema_name, item), dict(offset.position)))
        else:
            assert isinstance(item, Rejected)
            out.append(("rejected", item.reason, item.field, item.original, dict(offset.position)))
    report = next((inbox / "processed").glob("*.rejects.csv"))
    with report.open(encoding="utf-8-sig", newline="") as fh:
        return out, list(csv.reader(fh))


def test_workers_give_what_one_process_gives(tmp_path: Path) -> None:
    data = _roster(1500, seed=18)
    serial, serial_report = _poll(tmp_path, data, workers=0)
    parallel, parallel_report = _poll(tmp_path, data, workers=2)
    assert len(serial) == 1500
    assert {kind for kind, *_ in serial} == {"record", "rejected"}
    assert parallel == serial
    assert parallel_report == serial_report
