"""ID-number cells as real exports deliver them: read exactly when the text is intact, refused when a
spreadsheet has turned the number into a number (its last digits are gone), whatever the rendering.

Property tests over every valid ID number shape (hypothesis), so renderings no sample file shows are
covered too: an export we have not seen must be read exactly or refused, never guessed.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.sdk import testkit
from connectors.sdk.errors import RecordRejected
from connectors.sdk.mapping import FieldSpec, _id_number
from hub.identity import check_character

SPEC = FieldSpec(column="身份证号码", type="id_number")


@st.composite
def id_numbers(draw: st.DrawFn) -> str:
    region = draw(st.sampled_from(["110105", "530102", "532503", "430511", "450100", "520000"]))
    born = draw(st.dates(min_value=date(1900, 1, 1), max_value=date(2020, 12, 31)))
    first17 = f"{region}{born:%Y%m%d}{draw(st.integers(0, 999)):03d}"
    return first17 + check_character(first17)


FULL = str.maketrans("0123456789X", "０１２３４５６７８９Ｘ")
KEPT = [
    lambda n: n, lambda n: n.lower(), lambda n: f"  {n} ", lambda n: f"{n}\u3000", lambda n: f"\u3000{n}",
    lambda n: n.translate(FULL), lambda n: f"'{n}", lambda n: f"\t{n}", lambda n: f'="{n}"', lambda n: f"\u200b{n}",
    lambda n: f"{n[:6]} {n[6:14]} {n[14:]}", lambda n: f"{n[:6]}-{n[6:14]}-{n[14:]}", lambda n: f"\ufeff{n}",
]
LOST = [
    lambda n: int(n[:17] + "0"), lambda n: float(n[:17] + "0"), lambda n: Decimal(n[:17] + "0"),
    lambda n: f"{float(n[:17] + '0'):.5E}".replace("E+", "E+"), lambda n: f"{float(n[:17] + '0'):.14e}",
    lambda n: f"{n[:17]}0.0", lambda n: f"{n[:15]}000",
]


@given(id_numbers(), st.sampled_from(range(len(KEPT))))
def test_intact_text_is_read_exactly(number: str, how: int) -> None:
    assert _id_number(KEPT[how](number), SPEC, testkit.TEST_PSEUDONYM_KEY) == testkit.token(number)


@given(id_numbers(), st.sampled_from(range(len(LOST))))
def test_a_number_a_spreadsheet_made_is_refused_never_guessed(number: str, how: int) -> None:
    cell = LOST[how](number)
    try:
        token = _id_number(cell, SPEC, testkit.TEST_PSEUDONYM_KEY)
    except RecordRejected as exc:
        assert exc.reason == "invalid_id_number"
        return
    # Only "15 digits + 000" text can pass (its check character may happen to fit): then it IS that number,
    # read as typed — the connector cannot know Excel made it, and it converts nothing.
    assert isinstance(cell, str) and cell == f"{number[:15]}000" and token == testkit.token(cell)


@pytest.mark.parametrize("cell", [None, "", "   ", True, 3.0, "ID" + "1" * 16, "X" * 18])
def test_no_id_number_at_all(cell: object) -> None:
    with pytest.raises(RecordRejected) as exc:
        _id_number(cell, SPEC, testkit.TEST_PSEUDONYM_KEY)
    assert exc.value.reason == "invalid_id_number"
