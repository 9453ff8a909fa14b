"""Times on the wire: every answer renders them as ISO 8601 in UTC, and inputs are read back
the same way (an offset is honoured; a time without one is UTC).

The database keeps Unix seconds (floats): they sort and compare the same on SQLite and
PostgreSQL. Only the API's edges convert, through these two functions. Vendor dialects keep
their own formats where their documents define one (Oz's `time_created`, Pho.to's ...).
"""

from __future__ import annotations

import datetime as dt
import math

from faceplane.errors import Err, FaceplaneError


def iso_utc(ts: float | None) -> str | None:
    """Unix seconds as ISO 8601 UTC with milliseconds (`2026-01-02T03:04:05.678+00:00`)."""
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds")


# The last second an answer can render (ISO 8601 has four-digit years).
LATEST_S = 253402300799.0


def parse_time(value: str | float | int, field: str) -> float:
    """ISO 8601 (with an offset, or naive = UTC) as Unix seconds; INVALID_ARGUMENT naming
    `field` for anything else. A bare number is read as Unix seconds, as earlier versions
    documented."""
    if isinstance(value, bool):
        raise _bad(field, value)
    if isinstance(value, int | float):
        if not math.isfinite(value) or not 0 <= value <= LATEST_S:
            raise _bad(field, value)
        return float(value)
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(number) and 0 <= number <= LATEST_S:
            return number
        raise _bad(field, value)
    try:
        when = dt.datetime.fromisoformat(text)  # every ISO 8601 form since Python 3.11
    except ValueError:
        raise _bad(field, value) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def _bad(field: str, value: object) -> FaceplaneError:
    return FaceplaneError(
        Err.INVALID_ARGUMENT,
        f"`{field}` must be an ISO 8601 time, e.g. 2026-01-31T12:00:00Z "
        "(with an offset, or UTC when it has none).",
        field=field,
        value=str(value)[:100],
    )
