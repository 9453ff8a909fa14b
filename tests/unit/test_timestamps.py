"""Times on the wire: ISO 8601 UTC out; ISO 8601 in, offsets honoured, naive = UTC."""

from __future__ import annotations

import datetime as dt

import pytest

from faceplane.errors import FaceplaneError
from faceplane.timestamps import iso_utc, parse_time

NOON = dt.datetime(2026, 1, 31, 12, 0, tzinfo=dt.UTC).timestamp()


def test_times_render_as_iso_8601_utc_with_milliseconds() -> None:
    assert iso_utc(NOON + 0.5) == "2026-01-31T12:00:00.500+00:00"
    assert iso_utc(None) is None
    assert iso_utc(0) == "1970-01-01T00:00:00.000+00:00"


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-31T12:00:00Z",
        "2026-01-31T12:00:00+00:00",
        "2026-01-31T17:00:00+05:00",  # the offset is honoured, not dropped
        "2026-01-31T07:00:00-05:00",
        "2026-01-31T12:00:00",  # naive: UTC
        "2026-01-31 12:00:00",
        "20260131T120000Z",
        f"{NOON}",  # a bare number is Unix seconds (earlier versions documented it)
    ],
)
def test_iso_8601_in_every_common_spelling_is_read(text: str) -> None:
    assert parse_time(text, "since") == NOON


def test_a_round_trip_is_exact_to_the_millisecond() -> None:
    rendered = iso_utc(NOON + 0.123)
    assert rendered is not None and parse_time(rendered, "x") == pytest.approx(NOON + 0.123)
    assert parse_time(NOON, "x") == NOON and parse_time(7, "x") == 7.0


@pytest.mark.parametrize(
    "value", ["", "yesterday", "2026-13-01", "2026-01-31T25:00:00", "nan", "inf", True]
)
def test_anything_else_is_invalid_argument_naming_the_field(value: str | bool) -> None:
    with pytest.raises(FaceplaneError) as exc:
        parse_time(value, "since")
    assert exc.value.err.name == "INVALID_ARGUMENT" and exc.value.details["field"] == "since"
