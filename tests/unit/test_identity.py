"""hub.identity: GB 11643-1999 resident ID numbers and person_token."""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.config import Settings
from hub.errors import ValidationError
from hub.identity import (
    check_character,
    is_valid_id_number,
    mask,
    normalise,
    person_token,
    validate_id_number,
    warn_if_dev_key,
)

TODAY = date(2024, 6, 1)
KEY = "test-pseudonym-key"
PROVINCES = ["11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41",
             "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65", "71",
             "81", "82"]


def reference_check(first17: str) -> str:
    """The standard's definition, written independently: Σ aᵢ·Wᵢ with Wᵢ = 2^(18−i) mod 11, then the table."""
    total = sum(int(a) * (2 ** (17 - i) % 11) for i, a in enumerate(first17))
    return {0: "1", 1: "0", 2: "X", 3: "9", 4: "8", 5: "7", 6: "6", 7: "5", 8: "4", 9: "3", 10: "2"}[total % 11]


def make(region: str = "530102", born: date = date(1980, 7, 15), seq: str = "123") -> str:
    first17 = region + born.strftime("%Y%m%d") + seq
    return first17 + reference_check(first17)


def test_published_example() -> None:
    # The example number printed in GB 11643-1999 itself.
    assert validate_id_number("11010519491231002X", today=TODAY) == "11010519491231002X"
    assert check_character("11010519491231002") == "X"


def test_normalisation_lower_x_spaces_and_full_width() -> None:
    assert normalise("  11010519491231002x \n") == "11010519491231002X"
    assert validate_id_number("１１０１０５１９４９１２３１００２ｘ", today=TODAY) == "11010519491231002X"


@pytest.mark.parametrize(
    ("number", "message"),
    [
        ("", "is empty"),
        ("5301021980071512", "must have 18 characters, found 16"),
        ("530102800715123", "15-digit"),
        ("5301021980O715123X", "character 11 must be a digit"),
        ("53010219800715123Y", "last character"),
        ("990102198007151234", "region code starts with 99"),
        ("000102198007151234", "region code starts with 00"),
    ],
)
def test_structural_errors(number: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as info:
        validate_id_number(number, today=TODAY)
    assert info.value.field == "id_number"


def test_birth_date_not_a_calendar_date() -> None:
    first17 = "530102" + "19900230" + "123"
    with pytest.raises(ValidationError, match="not a calendar date") as info:
        validate_id_number(first17 + reference_check(first17), today=TODAY)
    assert "19900230" not in str(info.value)


def test_birth_date_in_the_future() -> None:
    number = make(born=TODAY + timedelta(days=1))
    with pytest.raises(ValidationError, match="in the future"):
        validate_id_number(number, today=TODAY)
    assert validate_id_number(make(born=TODAY), today=TODAY)


def test_wrong_check_character() -> None:
    good = make()
    bad = good[:17] + ("0" if good[17] != "0" else "1")
    with pytest.raises(ValidationError, match="check character"):
        validate_id_number(bad, today=TODAY)


@pytest.mark.parametrize(
    "number",
    ["53010219800715123", "5301021980071512345", "530102198007151239", "99010219800715123X",
     "530102199002301234", "5301021980O71512 3"],
)
def test_messages_never_contain_the_number(number: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_id_number(number, today=TODAY)
    text = str(info.value) + repr(info.value.value)
    assert number not in text
    digits = "".join(ch for ch in number if ch.isdigit())
    for i in range(len(digits) - 7):  # no run of 8 consecutive digits of the input is shown
        assert digits[i:i + 8] not in text


def test_mask_shows_at_most_first_six_and_last_one() -> None:
    assert mask("53010219800715123X") == "530102***********X"
    assert mask("12345") == "*****"
    assert mask(" 11010519491231002x") == "110105***********X"


def test_person_token_is_keyed_hmac_of_the_normalised_number() -> None:
    number = make()
    expected = "p_" + hmac.new(KEY.encode(), number.encode(), hashlib.sha256).hexdigest()[:32]
    assert person_token(number, KEY, today=TODAY) == expected
    assert person_token(number.lower() + " ", KEY.encode(), today=TODAY) == expected
    assert person_token(number, "another-key", today=TODAY) != expected


def test_person_token_refuses_invalid_numbers_and_empty_keys() -> None:
    with pytest.raises(ValidationError):
        person_token("530102198007151239", KEY, today=TODAY)
    with pytest.raises(ValueError, match="empty"):
        person_token(make(), "", today=TODAY)


@given(
    region=st.sampled_from(PROVINCES).flatmap(lambda p: st.from_regex(rf"\A{p}[0-9]{{4}}\Z")),
    born=st.dates(min_value=date(1900, 1, 1), max_value=TODAY),
    seq=st.from_regex(r"\A[0-9]{3}\Z"),
    lower=st.booleans(),
)
def test_generated_valid_numbers_round_trip(region: str, born: date, seq: str, lower: bool) -> None:
    number = make(region, born, seq)
    typed = f"  {number.lower() if lower else number}\t"
    assert validate_id_number(typed, today=TODAY) == number
    assert is_valid_id_number(typed, today=TODAY)
    token = person_token(typed, KEY, today=TODAY)
    assert token == person_token(number, KEY, today=TODAY)
    assert token.startswith("p_") and len(token) == 34 and int(token[2:], 16) >= 0


@given(
    region=st.sampled_from(PROVINCES).flatmap(lambda p: st.from_regex(rf"\A{p}[0-9]{{4}}\Z")),
    born=st.dates(min_value=date(1900, 1, 1), max_value=TODAY),
    seq=st.from_regex(r"\A[0-9]{3}\Z"),
    position=st.integers(min_value=0, max_value=16),
    delta=st.integers(min_value=1, max_value=9),
)
def test_any_single_digit_typo_is_caught(region: str, born: date, seq: str, position: int, delta: int) -> None:
    number = make(region, born, seq)
    digit = (int(number[position]) + delta) % 10
    typo = number[:position] + str(digit) + number[position + 1:]
    assert not is_valid_id_number(typo, today=TODAY)


def test_warn_if_dev_key(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.identity")
    with caplog.at_level(logging.WARNING, logger="test.identity"):
        assert warn_if_dev_key(Settings(), log) is True
    assert "DEVELOPMENT key" in caplog.text
    assert "HUB_EDGE_KEY is the built-in DEVELOPMENT key" in caplog.text  # it opens every dead-letter original
    caplog.clear()
    real_edge = "cmVhbC1lZGdlLWtleS0zMi1ieXRlcy1sb25nLi4uLi4="
    assert warn_if_dev_key(Settings(pseudonym_key="a-real-secret", edge_key=real_edge), log) is False
    assert not caplog.text


def test_a_person_token_is_never_taken_for_an_id_number() -> None:
    """About 0.4 % of tokens hold a run of 15 digits; masking it broke referral ids that embed the token
    (hub up's simulator answered a referral whose id the edge then refused)."""
    from hub.events import ReferralUpdated
    from hub.identity import redact

    token = "p_4e" + "110101199003074" + "aaaaaaaaaaaaaaa"
    assert redact(token) == token and redact(f"uninsured:{token}:2024#1") == f"uninsured:{token}:2024#1"
    assert redact("ID 110101199003074514") != "ID 110101199003074514"  # a real one still is masked
    ReferralUpdated.model_validate({
        "event_id": "e1", "occurred_at": "2024-01-01T00:00:00+08:00", "person_token": token,
        "referral_id": f"uninsured:{token}:2024#1/insurance/enrollment", "status": "acknowledged",
        "reason": None, "amount_fen": None, "department": "insurance"})
