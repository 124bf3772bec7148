"""Resident ID numbers (居民身份证号码, GB 11643-1999) and the pseudonymous ``person_token``.

Why here and only here: connectors are the only code that sees raw ID numbers (§1). They validate
a number with ``validate_id_number`` — so a mistyped number becomes a dead letter at the edge
instead of a second, phantom person on every topic — and replace it by ``person_token``, a keyed
HMAC, before anything leaves the edge. Without the key a token cannot be reversed by trying the
~10^11 plausible numbers, which a plain hash could.

Privacy of errors: an error message or log line never holds the full number. ``mask`` shows at most
the first 6 characters (the region code) and the last one (the check character); validation
messages say which part is wrong without repeating the digits of the birth date.

Number layout (18 characters): 6-digit region code (GB/T 2260) · 8-digit birth date YYYYMMDD ·
3-digit sequence (odd = male) · 1 check character from ISO 7064 MOD 11-2 (weights
7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2, remainder → ``"10X98765432"``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import operator
import re
import unicodedata
from datetime import date, datetime

from hub.config import Settings
from hub.errors import ValidationError
from hub.timeutil import SHANGHAI

__all__ = [
    "PROVINCE_CODES", "TOKEN_PATTERN", "normalise", "mask", "redact", "find_id_numbers", "check_character",
    "validate_id_number", "is_valid_id_number", "person_token", "is_person_token", "derive_key",
    "warn_if_dev_key",
]

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARACTERS = "10X98765432"
PROVINCE_CODES = frozenset(
    {"11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37",
     "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65",
     "71", "81", "82"}
)
"""First two digits of a GB/T 2260 code: the provinces, autonomous regions and municipalities,
Taiwan (71), Hong Kong (81) and Macao (82)."""

TOKEN_PREFIX = "p_"
TOKEN_HEX_CHARS = 32
TOKEN_PATTERN = re.compile(r"^p_[0-9a-f]{32}\Z")
"""The one shape of a ``person_token``: anything else on a person field is refused (a raw ID number in
disguise — ``ID5301…``, ``530102-19900101-1231`` — must never pass for a token)."""
_DIGITS = frozenset("0123456789")
_FIELD = "id_number"


def normalise(id_number: str) -> str:
    """Strip surrounding whitespace, fold full-width characters (NFKC) and upper-case the ``x``.

    Spreadsheets exported on Chinese systems often carry full-width digits (``５３０１…``) or a
    lower-case check character; they are the same number and must give the same token.
    """
    return unicodedata.normalize("NFKC", id_number).strip().upper()


def mask(id_number: str) -> str:
    """A loggable form: the first 6 and the last character at most, the rest as ``*``.

    Short inputs show less (a fragment of a few characters could be most of what was typed).
    """
    text = normalise(id_number) if isinstance(id_number, str) else str(id_number)
    if len(text) < 10:
        return "*" * len(text)
    return text[:6] + "*" * (len(text) - 7) + text[-1]


_D = "[0-9\uff10-\uff19]"  # ASCII and full-width digits
_SEP = "[ \u3000\t\\-_./]?"
_CHECK = "[0-9Xx\uff10-\uff19\uff38\uff58]"
_ID_LIKE = re.compile(
    rf"(?<![0-9\uff10-\uff19])(?:{_D}(?:{_SEP}{_D}){{16}}{_SEP}{_CHECK}|{_D}(?:{_SEP}{_D}){{14}})"
    rf"(?![0-9\uff10-\uff19])"
)
"""An 18-character (17 digits + check) or 15-digit run, digits possibly separated by one space, hyphen,
dot, slash or underscore each, ASCII or full-width: what a person would recognise as an ID number."""


_TOKEN_IN_TEXT = re.compile(r"p_[0-9a-f]{32}(?![0-9a-f])")


def redact(text: str) -> str:
    """``text`` with every ID-number-like run replaced by its :func:`mask` — the one masking step.

    Every error text that leaves a process (dead-letter ``detail``, rejects reports, HTTP 4xx bodies,
    log lines built from department input) goes through here. It masks any run *shaped* like an ID
    number, valid or not: a mistyped number identifies a person as well as a correct one.
    """
    if not isinstance(text, str):
        text = str(text)
    # A person token (p_ + 32 hex) is not an ID number, though its hex may hold a long run of digits
    # (≈0.4 % of tokens hold 15): a digit run inside one is left alone.
    tokens = [m.span() for m in _TOKEN_IN_TEXT.finditer(text)]

    def masked(m: re.Match[str]) -> str:
        if any(a <= m.start() and m.end() <= b for a, b in tokens):
            return m.group(0)
        return mask(re.sub(r"[^0-9Xx\uff10-\uff19\uff38\uff58]", "", m.group(0)))

    return _ID_LIKE.sub(masked, text)


def find_id_numbers(text: str, *, today: date | None = None) -> list[str]:
    """Every *valid* resident ID number in ``text`` (check character verified), normalised.

    For ``hub privacy scan``: an 18-digit run that passes GB 11643 is almost surely an ID number
    (a random run passes with probability ≈ 1/11 × plausible date × region ≈ 1 in 5,000).
    """
    found = []
    for m in _ID_LIKE.finditer(text):
        digits = normalise(re.sub(r"[^0-9Xx\uff10-\uff19\uff38\uff58]", "", m.group(0)))
        if len(digits) == 18 and is_valid_id_number(digits, today=today):
            found.append(digits)
    return found


_ZERO_WEIGHT = ord("0") * sum(WEIGHTS)


def _ascii_digits(text: str) -> bool:
    """Only 0-9 (``str.isdigit`` alone also accepts other scripts' digits and superscripts)."""
    return text.isascii() and text.isdigit()


def check_character(first17: str) -> str:
    """The GB 11643 check character of the first 17 digits (ISO 7064 MOD 11-2)."""
    if len(first17) != 17 or not _ascii_digits(first17):
        raise ValueError("check_character needs exactly 17 ASCII digits")
    # Σ digit × weight over the code points (a bulk roster computes millions of these): ord(d) = ord("0") + d
    total = sum(map(operator.mul, first17.encode("ascii"), WEIGHTS)) - _ZERO_WEIGHT
    return CHECK_CHARACTERS[total % 11]


def _fail(problem: str, id_number: str) -> ValidationError:
    return ValidationError(_FIELD, f"{problem} ({mask(id_number)})", mask(id_number))


def validate_id_number(id_number: str, *, today: date | None = None) -> str:
    """The normalised number, or ``ValidationError`` saying which part is wrong (masked, never whole).

    ``today`` bounds the birth date (default: today in Asia/Shanghai); pass it for reproducible tests.
    """
    if not isinstance(id_number, str):
        raise ValidationError(_FIELD, f"expected a string, found {type(id_number).__name__}")
    number = normalise(id_number)
    if not number:
        raise ValidationError(_FIELD, "is empty")
    if len(number) != 18:
        hint = " (a 15-digit number is the pre-1999 format: convert it to 18 digits first)" \
            if len(number) == 15 else ""
        raise _fail(f"must have 18 characters, found {len(number)}{hint}", number)
    if not _ascii_digits(number[:17]):
        bad = next(i for i, ch in enumerate(number[:17]) if ch not in _DIGITS)
        raise _fail(f"character {bad + 1} must be a digit 0-9", number)
    if number[17] not in _DIGITS and number[17] != "X":
        raise _fail("the last character must be a digit 0-9 or X", number)
    if number[:2] not in PROVINCE_CODES:
        raise _fail(f"region code starts with {number[:2]}, not a GB/T 2260 province code", number)
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise _fail("the birth date (characters 7-14) is not a calendar date", number) from None
    if born > (today or datetime.now(SHANGHAI).date()):
        raise _fail("the birth date (characters 7-14) is in the future", number)
    if check_character(number[:17]) != number[17]:
        raise _fail("check character does not match the first 17 digits (mistyped number?)", number)
    return number


def is_valid_id_number(id_number: str, *, today: date | None = None) -> bool:
    """True when ``validate_id_number`` accepts the number."""
    try:
        validate_id_number(id_number, today=today)
    except ValidationError:
        return False
    return True


def _key_bytes(key: str | bytes) -> bytes:
    if isinstance(key, str):
        key = key.encode("utf-8")
    if not key:
        raise ValueError("the pseudonym key is empty; set HUB_PSEUDONYM_KEY")
    return key


def person_token(id_number: str, key: str | bytes, *, validate: bool = True,
                 today: date | None = None) -> str:
    """``p_`` + the first 32 hex characters of HMAC-SHA256(key, normalised number).

    ``key`` is ``Settings.pseudonym_key`` (``HUB_PSEUDONYM_KEY``). Validation is on by default so that
    a mistyped number is rejected rather than becoming a token no other department will ever match.
    128 bits of the MAC keep accidental collisions out of reach for any population.
    """
    number = validate_id_number(id_number, today=today) if validate else normalise(id_number)
    mac = hmac.digest(_key_bytes(key), number.encode("utf-8"), "sha256")  # one call: millions per roster
    return TOKEN_PREFIX + mac.hex()[:TOKEN_HEX_CHARS]


def is_person_token(value: object) -> bool:
    """Whether ``value`` has the one shape of a person token (``p_`` + 32 lower-case hex)."""
    return isinstance(value, str) and TOKEN_PATTERN.match(value) is not None


def derive_key(key: str | bytes, purpose: str) -> bytes:
    """A sub-key of ``key`` for one purpose (HMAC-SHA256(key, "hub-derive:" + purpose)).

    Why: the edge needs keyed hashes for several things (person tokens, event ids, offsets); deriving
    each from the one secret keeps one secret to manage while no output of one purpose can be
    replayed as another's.
    """
    return hmac.new(_key_bytes(key), f"hub-derive:{purpose}".encode(), hashlib.sha256).digest()


def warn_if_dev_key(settings: Settings, logger: logging.Logger) -> bool:
    """Log a loud warning when the development pseudonym key is in use; True if it is.

    Tokens made with the published development key can be reversed by anyone who has the source, so
    they must never leave a developer's machine; and tokens made with different keys never match. The
    development edge key (it opens every encrypted dead-letter original) is warned about too.
    """
    from hub.config import DEV_EDGE_KEY

    if settings.edge_key == DEV_EDGE_KEY:
        logger.warning(
            "!!! HUB_EDGE_KEY is the built-in DEVELOPMENT key: anyone with the source can decrypt the rejected "
            "rows (ID numbers, names) kept in dead letters. Set HUB_EDGE_KEY to base64 of 32 random bytes. !!!"
        )
    if not settings.uses_dev_pseudonym_key:
        return False
    logger.warning(
        "!!! HUB_PSEUDONYM_KEY is the built-in DEVELOPMENT key: person tokens are NOT pseudonymous and "
        "will not match tokens from other deployments. Set HUB_PSEUDONYM_KEY to a secret shared by every "
        "connector of this province before handling real ID numbers. !!!"
    )
    return True
