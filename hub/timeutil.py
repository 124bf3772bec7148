"""Event time (§5.1 of the policy spec): parse, compare, print — always Asia/Shanghai.

Why a module of its own: the settlement rules (§3), the monitoring state machine (§5) and the
connectors all read department timestamps, and they must agree to the microsecond on what a
timestamp means. Times are kept as timezone-aware ``datetime`` in UTC+8.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone

SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")
"""China has kept UTC+8 without daylight saving since 1991, so a fixed offset is exact."""

DAY = timedelta(days=1)

_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_DATETIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}:\d{2})?$"
)


def parse_event_time(text: object) -> datetime:
    """Parse ``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM[:SS[.fraction]][Z|±HH:MM]`` into Shanghai time.

    A date is 00:00 Shanghai; a timestamp without an offset is Shanghai local time. Any other
    form raises ``ValueError`` with the reason, so callers can report ``invalid_input``.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected an ISO-8601 date or timestamp string, found {type(text).__name__}")
    m = _DATE.match(text)
    if m:
        y, mo, d = (int(g) for g in m.groups())
        return datetime(y, mo, d, tzinfo=SHANGHAI)
    m = _DATETIME.match(text)
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
    return dt.astimezone(SHANGHAI)


def shanghai_date(text: object) -> date:
    """The Shanghai calendar date of a date or timestamp string (§3: selects year and policy)."""
    return parse_event_time(text).date()


def format_time(dt: datetime) -> str:
    """Print to the second with ``+08:00`` (§5.1)."""
    return dt.astimezone(SHANGHAI).replace(microsecond=0).isoformat()


def year_start(year: int) -> datetime:
    """1 January 00:00 Shanghai of ``year``."""
    return datetime(year, 1, 1, tzinfo=SHANGHAI)
