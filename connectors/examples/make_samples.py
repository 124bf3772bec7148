"""Write the sample department files the example configurations read.

Run ``python -m connectors.examples.make_samples [DEST]`` (default: next to this file). The tests
call ``write_samples(tmp_path)`` so every example is exercised end to end. The ID numbers are
synthetic but valid (GB 11643 check character), and each file holds deliberately bad rows (a
mistyped ID number, an unknown category) to show the rejects report and dead letters.

They also carry what real exports do to ID numbers, read exactly or refused, never guessed:
an ID number saved as an Excel *number* (15 significant digits survive) and its CSV form
``5.30102E+17`` are rejected as ``invalid_id_number``; full-width digits, ``="…"`` (Excel's way to keep a
number text in a CSV), a full-width space after the number, a date column saved as Excel serials are
read as the department meant them.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

from hub.identity import check_character


def synthetic_id(seq: int, region: str = "530102", born: str = "19700101") -> str:
    """A valid, synthetic resident ID number (no real person)."""
    first17 = f"{region}{born}{seq % 1000:03d}"
    return first17 + check_character(first17)


def to_full_width(text: str) -> str:
    """Digits and X as full-width characters (０-９, Ｘ), as Chinese input methods type them."""
    return text.translate(str.maketrans("0123456789X", "０１２３４５６７８９Ｘ"))


def mistyped(id_number: str) -> str:
    """The same number with a wrong check character — the commonest clerical error."""
    return id_number[:17] + ("0" if id_number[17] != "0" else "1")


REVITALIZATION_HEADER = ["序号", "县(市、区)", "乡(镇)", "村", "户主姓名", "姓名", "证件号码", "与户主关系",
                         "人员类别", "家庭年人均纯收入(元)", "行政区划代码", "变更日期"]


def revitalization_rows() -> list[list[object]]:
    rows: list[list[object]] = [
        [1, "五华区", "沙朗乡", "大村子村", "张德福", "张德福", synthetic_id(1), "户主", "脱贫人口", "8650.50",
         "530102", "2024-03-01"],
        [2, "五华区", "沙朗乡", "大村子村", "张德福", "李秀英", synthetic_id(2), "配偶", "脱贫人口、监测对象",
         "8650.50", "530102", "2024-03-01"],
        [3, "五华区", "厂口乡", "小河村", "王国强", "王国强", synthetic_id(3), "户主", "边缘易致贫户", "6120",
         "530102", "2024/3/2"],
        [4, "五华区", "厂口乡", "小河村", "赵文", "赵文", mistyped(synthetic_id(4)), "户主", "脱贫人口", "7000",
         "530102", "2024-03-02"],
        [5, "五华区", "厂口乡", "小河村", "钱多", "钱多", synthetic_id(5), "户主", "低保户", "5000",
         "530102", "2024-03-02"],
        [6, "五华区", "沙朗乡", "大村子村", "孙立", "孙立", synthetic_id(6), "户主", "一般农户", "",
         "530102", "2024年3月3日"],
        # Real-export faults: the ID number stored as an Excel number (its last digits are gone) → rejected;
        # full-width digits and a date cell saved as an Excel serial (45355 = 2024-03-04) → read exactly.
        [7, "五华区", "沙朗乡", "大村子村", "孙立", "孙小梅", int(synthetic_id(9)), "之女", "脱贫人口", "5200",
         "530102", "2024-03-03"],
        [8, "五华区", "厂口乡", "小河村", "周强", "周强", to_full_width(synthetic_id(8)), "户主", "监测对象", "4800",
         "530102", 45355],
    ]
    return rows


def write_revitalization_xlsx(path: Path) -> Path:
    """XLSX as the national system exports it: merged title, 填报单位 row, header, data, blank row."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "监测对象和脱贫人口"
    ws.append(["昆明市五华区防止返贫监测对象和脱贫人口信息表（2024年3月）"])
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(REVITALIZATION_HEADER))
    ws.append(["填报单位：五华区乡村振兴局", *([None] * 8), "填报日期：2024-03-05"])
    ws.append(REVITALIZATION_HEADER)
    rows = revitalization_rows()
    for r in rows[:3]:
        ws.append(r)
    ws.append([])  # blank line in the middle, as hand-edited sheets have
    for r in rows[3:]:
        ws.append(r)
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


CIVIL_HEADER = ["序号", "姓名", "性别", "身份证号码", "救助类别", "保障人口", "月保障金(元)",
                "行政区划代码", "审批日期"]


def civil_rows() -> list[list[str]]:
    return [
        ["1", "周桂兰", "女", synthetic_id(11), "农村低保", "3", "450", "530102", "2024-03-04"],
        ["2", "吴老四", "男", synthetic_id(12), "特困人员", "1", "780", "530102", "2024-03-04"],
        ["3", "李秀英", "女", synthetic_id(2), "农村低保", "4", "450", "530102", "2024-03-04"],
        ["4", "冯大", "男", synthetic_id(13)[:15], "农村低保", "2", "450", "530102", "2024-03-04"],
        ["5", "陈二", "男", synthetic_id(14), "五保户", "1", "780", "530102", "2024-03-04"],
        # Real-export faults: ="…" keeps the number text in a CSV, a full-width space after it → read exactly;
        # the scientific form Excel writes for a number → rejected (the digits are gone).
        ["6", "郑七", "女", f'="{synthetic_id(15)}"', "农村低保", "2", "450", "530102", "2024-03-04"],
        ["7", "王八", "男", synthetic_id(16) + "\u3000", "特困人员", "1", "780", "530102", "2024/3/4"],
        ["8", "钱九", "女", "5.30102E+17", "农村低保", "3", "450", "530102", "2024-03-04"],
    ]


def write_civil_affairs_csv(path: Path, encoding: str = "gbk") -> Path:
    """CSV as Excel saves it on a Chinese Windows: GBK, a title line, blank lines, CRLF."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(["五华区2024年3月农村低保、特困人员花名册"] + [""] * (len(CIVIL_HEADER) - 1))
    w.writerow([""] * len(CIVIL_HEADER))
    w.writerow(CIVIL_HEADER)
    rows = civil_rows()
    w.writerows(rows[:2])
    w.writerow([])
    w.writerows(rows[2:])
    w.writerow([])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue().encode(encoding))
    return path


FAMILY_HEADER = ["居民身份证号", "居民姓名", "服务类型", "服务时间", "签约团队", "随访方式"]


def write_family_doctor_csv(path: Path) -> Path:
    rows = [
        [synthetic_id(1), "张德福", "签约", "2024-03-05 09:30", "沙朗卫生院1组", ""],
        [synthetic_id(1), "张德福", "随访", "2024-03-20 10:00", "沙朗卫生院1组", "入户"],
        [synthetic_id(3), "王国强", "解约", "2024-03-21 15:12:09", "厂口卫生院2组", ""],
        [synthetic_id(2), "李秀英", "体检", "2024-03-22 08:00", "沙朗卫生院1组", ""],
    ]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(FAMILY_HEADER)
    w.writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(buf.getvalue(), encoding="utf-8-sig")
    return path


def write_samples(dest: Path) -> dict[str, Path]:
    """Every sample file under ``dest/samples/…``, as the example configurations expect."""
    s = dest / "samples"
    return {
        "revitalization": write_revitalization_xlsx(s / "revitalization" / "监测对象和脱贫人口信息表_202403.xlsx"),
        "civil_affairs": write_civil_affairs_csv(s / "civil_affairs" / "农村低保特困人员花名册_202403.csv"),
        "family_doctor": write_family_doctor_csv(s / "family_doctor" / "家庭医生签约随访_202403.csv"),
    }


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent
    for feed, p in write_samples(target).items():
        print(f"{feed}: {p}")
