"""``hub connector new NAME``: a connector package that works before you change a line.

What it writes is the worked example of connectors/README.md in miniature: one source class, a
YAML configuration with a Chinese-header mapping, a sample file, the entry-point declaration and a
test that passes. A department developer then replaces the reading code and the mapping.
"""

from __future__ import annotations

from pathlib import Path

_PYPROJECT = '''[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "hub-connector-{dash}"
version = "0.1.0"
description = "{name}: a department connector for the health-relief integration hub"
requires-python = ">=3.11"
dependencies = ["health-relief-hub"]

[project.entry-points."hub.connectors"]
{name} = "{name}.connector:{cls}"

[tool.setuptools.packages.find]
include = ["{name}*"]
'''

_CONNECTOR = '''"""{name} — reads a department CSV file row by row (replace with your system's format).

Overview / How it works / Behaviour when things go wrong: see connectors/README.md (same headings).
The runner stores the offset ``{{"row": n}}`` after each committed batch, so a restart resumes after
the last row the hub has; rows re-sent after a crash carry the same deterministic event ids.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from pydantic import Field

from connectors.sdk import Rejected, SourceConfig, SourceConnector, SourceOffset, SourceRecord


class {cfg}(SourceConfig):
    """Settings of {name}: the keys next to the common ones (name, topic, mapping …)."""

    path: Path = Field(description="the CSV file to read (relative to the YAML file)")
    encoding: str = Field("utf-8-sig", description="text encoding of the file (gb18030 for GBK exports)")


class {cls}(SourceConnector):
    """One event per CSV row; the header names are the mapping's columns."""

    config_model = {cfg}
    config: {cfg}

    def poll(self) -> Iterator[tuple[SourceRecord | Rejected, SourceOffset]]:
        path = self.config.resolve(self.config.path)
        partition = f"file:{{path.name}}"
        done = int(self.offsets.get(partition, {{}}).get("row", 0))
        with path.open(encoding=self.config.encoding, newline="") as f:
            for number, row in enumerate(csv.DictReader(f), start=2):  # row 1 is the header
                if number <= done:
                    continue
                yield self.map_row(row, where=f"{{path.name}}:{{number}}"), SourceOffset(partition, {{"row": number}})
'''

_CONFIG = '''# {name}: diagnoses from a township health centre, as a CSV export.
name: {dash}
connector: {name}
department: health
topic: health.diagnoses.v1
path: sample.csv
mapping:
  natural_key: [身份证号, 诊断编码, 诊断时间]
  fields:
    person_token: {{column: 身份证号, type: id_number}}
    icd10: {{column: 诊断编码, type: str}}
    occurred_at: {{column: 诊断时间, type: datetime}}
'''

_TEST = '''"""{name}: rows become DiagnosisRecorded events; a mistyped ID number is rejected, not sent."""

from pathlib import Path

from connectors.sdk import Rejected, SourceRecord, testkit
from connectors.sdk.runner import encode_event
from {name}.connector import {cls}

HERE = Path(__file__).parent.parent


def test_rows_become_events_and_bad_rows_are_rejected() -> None:
    source = testkit.from_yaml(HERE / "config.yaml", cls={cls})
    items = testkit.poll_all(source)
    records = [i for i, _ in items if isinstance(i, SourceRecord)]
    rejected = [i for i, _ in items if isinstance(i, Rejected)]
    assert [r.value["icd10"] for r in records] == ["I10", "E11.9"]
    assert records[0].key == testkit.token("{id1}")
    assert [r.reason for r in rejected] == ["invalid_id_number"]
    for r in records:  # each record fits the event schema the runner will encode with
        encode_event(source.config.schema_name, r.value)


def test_a_restart_resumes_after_the_committed_row() -> None:
    source = testkit.from_yaml(HERE / "config.yaml", cls={cls})
    items = testkit.poll_all(source, offsets={{"file:sample.csv": {{"row": 3}}}})
    assert [o.position["row"] for _, o in items] == [4]
'''


def _camel(name: str) -> str:
    return "".join(p.capitalize() for p in name.split("_"))


def scaffold(name: str, dest: Path) -> Path:
    """Write the package ``dest/name``; refuses to overwrite."""
    from connectors.examples.make_samples import mistyped, synthetic_id

    root = dest / name
    if root.exists():
        raise FileExistsError(f"{root} already exists; choose another name or folder")
    cls, cfg = f"{_camel(name)}Source", f"{_camel(name)}Config"
    id1, id2 = synthetic_id(101), synthetic_id(102)
    values = {"name": name, "dash": name.replace("_", "-"), "cls": cls, "cfg": cfg, "id1": id1}
    (root / name).mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "pyproject.toml").write_text(_PYPROJECT.format(**values), encoding="utf-8")
    (root / name / "__init__.py").write_text(f'"""{name} connector."""\n', encoding="utf-8")
    (root / name / "connector.py").write_text(_CONNECTOR.format(**values), encoding="utf-8")
    (root / "config.yaml").write_text(_CONFIG.format(**values), encoding="utf-8")
    (root / "sample.csv").write_text(
        "身份证号,姓名,诊断编码,诊断名称,诊断时间\n"
        f"{id1},张三,I10,原发性高血压,2024-03-05 09:00\n"
        f"{mistyped(id2)},李四,C34.1,支气管和肺恶性肿瘤,2024-03-05 10:00\n"
        f"{id2},李四,E11.9,2型糖尿病,2024/3/6\n",
        encoding="utf-8",
    )
    (root / "tests" / f"test_{name}.py").write_text(_TEST.format(**values), encoding="utf-8")
    return root
