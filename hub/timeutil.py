"""Event time (§5.1 of the policy spec): parse, compare, print — always Asia/Shanghai.

Why a module of its own: the settlement rules (§3), the monitoring state machine (§5) and the
connectors all read department timestamps, and they must agree on what a timestamp means. Times
are kept as timezone-aware ``datetime`` in UTC+8; digits beyond the microsecond, which §5.1 still
compares, ride along in an ``EventTime``.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from fractions import Fraction
from typing import Any, SupportsIndex

SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")
"""China has kept UTC+8 without daylight saving since 1991, so a fixed offset is exact."""

DAY = timedelta(days=1)

# ASCII digits only, matched in full (``$`` would also accept a trailing newline): any other form is invalid.
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})", re.ASCII)
_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}:\d{2})?", re.ASCII
)


class EventTime(datetime):
    """An event time with digits beyond the microsecond (§5.1: "Times are compared at full precision").

    ``datetime`` stops at the microsecond. This subclass keeps the rest in ``sub_us`` (a fraction of
    one microsecond, in (0, 1)) and honours it when compared, hashed, shifted by a ``timedelta``
    (due times) or moved to another zone, so ``10:00:00.0000001`` is before ``10:00:00.0000002``.
    ``parse_event_time`` makes one only for an input with more than six fractional digits: every
    other time stays a plain ``datetime``. Printing to the second (``format_time``) drops it.
    """

    sub_us: Fraction = Fraction(0)  # instances that datetime's own C methods build carry nothing more

    @classmethod
    def of(cls, base: datetime, sub_us: Fraction) -> datetime:
        """``base`` plus ``sub_us`` microseconds (0 ≤ sub_us < 1); a plain datetime when there is no rest."""
        plain = _plain(base)
        if not sub_us:
            return plain
        t = cls(plain.year, plain.month, plain.day, plain.hour, plain.minute, plain.second, plain.microsecond,
                plain.tzinfo, fold=plain.fold)
        t.sub_us = sub_us
        return t

    def _cmp(self, other: object) -> int | None:
        if not isinstance(other, datetime):
            return None
        a, b = _plain(self), _plain(other)
        if a != b:
            return -1 if a < b else 1  # raises TypeError for naive vs aware, as datetime does
        sa, sb = self.sub_us, _sub_us(other)
        return (sa > sb) - (sa < sb)

    def __eq__(self, other: object) -> bool:
        c = self._cmp(other)
        return NotImplemented if c is None else c == 0

    def __ne__(self, other: object) -> bool:
        c = self._cmp(other)
        return NotImplemented if c is None else c != 0

    def __lt__(self, other: object) -> bool:
        c = self._cmp(other)
        return NotImplemented if c is None else c < 0

    def __le__(self, other: object) -> bool:
        c = self._cmp(other)
        return NotImplemented if c is None else c <= 0

    def __gt__(self, other: object) -> bool:
        c = self._cmp(other)
        return NotImplemented if c is None else c > 0

    def __ge__(self, other: object) -> bool:
        c = self._cmp(other)
        return NotImplemented if c is None else c >= 0

    def __hash__(self) -> int:
        plain = _plain(self)
        return hash(plain) if not self.sub_us else hash((plain, self.sub_us))

    def __add__(self, other: object) -> datetime:  # type: ignore[override]
        if isinstance(other, timedelta):
            return EventTime.of(_plain(self) + other, self.sub_us)
        return NotImplemented

    __radd__ = __add__

    def __sub__(self, other: object) -> Any:  # type: ignore[override]
        if isinstance(other, timedelta):
            return EventTime.of(_plain(self) - other, self.sub_us)
        if isinstance(other, datetime):
            return _plain(self) - _plain(other)  # a timedelta, to the microsecond
        return NotImplemented

    def __rsub__(self, other: object) -> Any:
        if isinstance(other, datetime):
            return _plain(other) - _plain(self)
        return NotImplemented

    def astimezone(self, tz: tzinfo | None = None) -> datetime:
        return EventTime.of(_plain(self).astimezone(tz), self.sub_us)

    def replace(self, *args: Any, **kwargs: Any) -> datetime:  # type: ignore[override]
        plain = _plain(self).replace(*args, **kwargs)
        return plain if args[6:7] or "microsecond" in kwargs else EventTime.of(plain, self.sub_us)

    def isoformat(self, sep: str = "T", timespec: str = "auto") -> str:
        plain = _plain(self)
        if timespec != "auto":
            return plain.isoformat(sep, timespec)
        digits, rest = "", Fraction(plain.microsecond) + self.sub_us
        while rest:  # the denominator is a power of ten: the expansion ends
            rest *= 10
            digits += str(int(rest // 1_000_000))
            rest %= 1_000_000
        text = plain.replace(microsecond=0).isoformat(sep)
        return f"{text[:19]}.{digits}{text[19:]}"

    def __str__(self) -> str:
        return self.isoformat(" ")

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple[Any, ...]:
        return (EventTime.of, (_plain(self), self.sub_us))


def _plain(t: datetime) -> datetime:
    if type(t) is datetime:
        return t
    return datetime(t.year, t.month, t.day, t.hour, t.minute, t.second, t.microsecond, t.tzinfo, fold=t.fold)


def _sub_us(t: datetime) -> Fraction:
    return t.sub_us if isinstance(t, EventTime) else Fraction(0)


def parse_event_time(text: object) -> datetime:
    """Parse ``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM[:SS[.fraction]][Z|±HH:MM]`` into Shanghai time.

    A date is 00:00 Shanghai; a timestamp without an offset is Shanghai local time. Any other
    form raises ``ValueError`` with the reason, so callers can report ``invalid_input``.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected an ISO-8601 date or timestamp string, found {type(text).__name__}")
    m = _DATE.fullmatch(text)
    if m:
        y, mo, d = (int(g) for g in m.groups())
        return datetime(y, mo, d, tzinfo=SHANGHAI)
    m = _DATETIME.fullmatch(text)
    if not m:
        raise ValueError(f"not a date (YYYY-MM-DD) or timestamp (YYYY-MM-DDTHH:MM[:SS[.f]][Z|±HH:MM]): {text!r}")
    y, mo, d, hh, mi = (int(g) for g in m.groups()[:5])
    ss = int(m.group(6) or 0)
    frac = m.group(7) or ""
    micro = int((frac + "000000")[:6]) if frac else 0
    off = m.group(8)
    if off is None:
        tz = SHANGHAI
    elif off == "Z":
        tz = UTC
    else:
        sign = 1 if off[0] == "+" else -1
        oh, om = int(off[1:3]), int(off[4:6])
        if oh > 23 or om > 59:
            raise ValueError(f"invalid UTC offset in {text!r}")
        tz = timezone(sign * timedelta(hours=oh, minutes=om))
    dt = datetime(y, mo, d, hh, mi, ss, micro, tzinfo=tz)
    sub_us = Fraction(int(frac[6:]), 10 ** len(frac[6:])) if len(frac) > 6 else Fraction(0)
    try:
        return EventTime.of(dt.astimezone(SHANGHAI), sub_us)  # full precision (§5.1)
    except OverflowError:  # e.g. 9999-12-31T23:00-05:00 is in year 10000 in Shanghai
        raise ValueError(f"{text!r} is outside the years 1–9999 in Asia/Shanghai") from None


def shanghai_date(text: object) -> date:
    """The Shanghai calendar date of a date or timestamp string (§3: selects year and policy)."""
    return parse_event_time(text).date()


def format_time(dt: datetime) -> str:
    """Print to the second with ``+08:00`` (§5.1)."""
    return dt.astimezone(SHANGHAI).replace(microsecond=0).isoformat()


def year_start(year: int) -> datetime:
    """1 January 00:00 Shanghai of ``year``."""
    return datetime(year, 1, 1, tzinfo=SHANGHAI)
