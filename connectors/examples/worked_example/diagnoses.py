"""township_diagnoses — the worked example of connectors/README.md: a township health centre's
daily diagnosis export (乡镇卫生院门诊诊断日志) as ``DiagnosisRecorded`` events.

Overview
    The centre's outpatient system writes one CSV a day, ``诊断日志_YYYYMMDD.csv`` (GBK), into a
    shared folder. Each line is one diagnosis. The hub needs them for ``major_disease`` and
    ``chronic_unsigned`` flags (§5.3).

How it works
    Every file is a source partition ``log:<file name>``; the position is the last line handed to
    the hub. The centre appends to today's file during the day, so a file is re-read from the
    committed line on every poll (no moving aside: tomorrow's file is another partition). Lines
    whose 诊断类型 is 疑似 (suspected) are skipped on purpose: only confirmed diagnoses are facts.
    Field mapping, ID numbers → person_token, event ids, offsets, dead letters and metrics are the
    SDK's: this class only knows the centre's file layout.

Behaviour when things go wrong
    A bad line → dead letter and the next line. A missing folder → the runner retries.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

from pydantic import Field

from connectors.sdk import Rejected, SourceConfig, SourceConnector, SourceOffset, SourceRecord
from connectors.sources.tabular import decode_text


class TownshipDiagnosesConfig(SourceConfig):
    """The two keys this connector adds to the common ones."""

    folder: Path = Field(description="shared folder of the daily logs (relative to the YAML file)")
    pattern: str = Field("诊断日志_*.csv", description="file names of the daily logs")


class TownshipDiagnosesSource(SourceConnector):
    """One DiagnosisRecorded per confirmed diagnosis line."""

    config_model = TownshipDiagnosesConfig
    config: TownshipDiagnosesConfig

    def poll(self) -> Iterator[tuple[SourceRecord | Rejected, SourceOffset]]:
        folder = self.config.resolve(self.config.folder)
        for path in sorted(folder.glob(self.config.pattern)):
            partition = f"log:{path.name}"
            done = int(self.offsets.get(partition, {}).get("line", 1))  # line 1 is the header
            reader = csv.DictReader(io.StringIO(decode_text(path.read_bytes())))
            for line, row in enumerate(reader, start=2):
                if line <= done:
                    continue
                offset = SourceOffset(partition, {"line": line})
                if (row.get("诊断类型") or "").strip() == "疑似":
                    continue  # not a fact yet; the offset still moves on with the next yielded line
                yield self.map_row(row, where=f"{path.name}:{line}"), offset
                self.offsets[partition] = offset.position
