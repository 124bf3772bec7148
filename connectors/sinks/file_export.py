"""file_export — a daily XLSX of referrals per department (转介清单), for offices that work from Excel.

Overview
    Township and county offices without a case system get ``<out_dir>/<部门>/转介清单_<日期>.xlsx``:
    one workbook per department and day (Asia/Shanghai date of the event), one row per referral
    change or escalation, with Chinese headers and terms.

How it works
    ``put`` groups events by (department, day); ``flush`` opens each touched workbook (or creates
    it), appends the rows not already in it (the last column holds the event id), and replaces the
    file atomically (write to a temporary file, then rename), so a reader never sees half a file.

Behaviour when things go wrong
    A redelivered event is recognised by its event id and not appended twice. A disk error fails
    the batch; the runner retries it after a back-off. A value that Excel would take for a formula
    (``=HYPERLINK(…)`` as a facility code) is written as text (``connectors.sdk.cells``).
"""

from __future__ import annotations

import os
from collections import defaultdict
from datetime import date, datetime
from pathlib import Path
from typing import Any

from openpyxl import Workbook, load_workbook
from openpyxl.styles import Font
from pydantic import Field

from connectors.sdk.base import SinkConnector
from connectors.sdk.cells import set_text_cell
from connectors.sdk.config import SinkConfig
from connectors.sdk.records import SinkRecord
from hub.timeutil import SHANGHAI

DEPARTMENTS = {"health": "卫生健康", "insurance": "医疗保障", "civil_affairs": "民政",
               "revitalization": "乡村振兴", "charity": "慈善"}
TYPES = {"medical_assistance": "医疗救助", "temporary_assistance": "临时救助", "monitoring_enrollment": "纳入监测",
         "charity_assistance": "慈善救助", "special_treatment": "大病专项救治", "family_doctor_signing": "家庭医生签约",
         "follow_up_visit": "随访", "enrollment": "参保", "premium_subsidy": "资助参保", "staffing": "空白点清零"}
STATES = {"open": "待处理", "acknowledged": "已签收", "accepted": "已受理", "rejected": "已拒绝",
          "completed": "已办结", "withdrawn": "已撤回"}
HEADER = ["事件时间", "类型", "转介编号", "转介类型", "状态", "办理时限", "对象", "预警编号", "事件ID"]


class FileExportConfig(SinkConfig):
    """Settings of file_export."""

    out_dir: Path = Field(description="folder of the workbooks (relative to the YAML file)")
    topics: list[str] = Field(["hub.referrals.v1"], min_length=1, description="referral topic(s)")


def _fmt(v: Any) -> str:
    return v.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S") if isinstance(v, datetime) else str(v or "")


class FileExportSink(SinkConnector):
    """Writes daily referral workbooks (see module docstring)."""

    config_model = FileExportConfig
    config: FileExportConfig

    def start(self) -> None:
        self.out = self.config.resolve(self.config.out_dir)
        self.pending: dict[tuple[str, date], list[list[str]]] = defaultdict(list)

    def path_for(self, department: str, day: date) -> Path:
        return self.out / DEPARTMENTS.get(department, department) / f"转介清单_{day.isoformat()}.xlsx"

    def put(self, records: list[SinkRecord]) -> None:
        for r in records:
            v = r.value
            at = v["occurred_at"]
            day = at.astimezone(SHANGHAI).date() if isinstance(at, datetime) else date.fromisoformat(str(at)[:10])
            row = [_fmt(at), "超时督办" if v.get("kind") == "escalation" else "状态变更", v.get("referral_id", ""),
                   TYPES.get(str(v.get("referral_type")), str(v.get("referral_type", ""))),
                   STATES.get(str(v.get("state")), str(v.get("state", ""))), _fmt(v.get("due")),
                   str(v.get("subject", "")), str(v.get("flag_id", "")), r.event_id]
            self.pending[(str(v.get("department", "unknown")), day)].append(row)

    def flush(self) -> None:
        for (department, day), rows in self.pending.items():
            self._append(self.path_for(department, day), department, day, rows)
        self.pending.clear()

    def _append(self, path: Path, department: str, day: date, rows: list[list[str]]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            wb = load_workbook(path)
            ws = wb.active
        else:
            wb = Workbook()
            ws = wb.active
            ws.title = "转介清单"
            ws.append([f"{DEPARTMENTS.get(department, department)} 救助转介清单 {day.isoformat()}"])
            ws.append(HEADER)
            for cell in ws[2]:
                cell.font = Font(bold=True)
        seen = {row[-1] for row in ws.iter_rows(min_row=3, values_only=True) if row}
        for row in rows:
            if row[-1] not in seen:
                n = ws.max_row + 1
                for col, value in enumerate(row, start=1):
                    set_text_cell(ws.cell(row=n, column=col), value)
                seen.add(row[-1])
        tmp = path.with_name(f".{path.name}.tmp")
        wb.save(tmp)
        os.replace(tmp, path)
