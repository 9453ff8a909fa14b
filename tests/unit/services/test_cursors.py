"""The page cursor codec: what it makes it reads back; anything else is INVALID_ARGUMENT
naming the field."""

from __future__ import annotations

import base64

import pytest

from faceplane.errors import FaceplaneError
from faceplane.services.cursors import MAX_CURSOR_CHARS, decode_cursor, encode_cursor


def test_a_cursor_reads_back_its_sort_key_exactly() -> None:
    key = (1712345678.123456, "a" * 32)
    cursor = encode_cursor(*key)
    assert decode_cursor(cursor, float, str) == key
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert decode_cursor(encode_cursor(42), int) == (42,)
    assert decode_cursor(encode_cursor(3), float) == (3.0,)  # an integral time is a time


@pytest.mark.parametrize(
    ("cursor", "kinds"),
    [
        ("abc", (float, str)),
        ("", (int,)),
        ("!!!!", (int,)),
        (base64.urlsafe_b64encode(b"\xff\xfe").decode(), (int,)),  # not UTF-8
        (base64.urlsafe_b64encode(b"not json").decode(), (int,)),
        (encode_cursor(1, 2), (int,)),  # too many parts
        (encode_cursor("x"), (int,)),  # wrong type
        (encode_cursor(True), (int,)),  # a bool is no integer
        (encode_cursor(10**30), (int,)),  # past a 64-bit column
        (encode_cursor(1.5), (int,)),
        (encode_cursor("x" * 201), (str,)),
        (base64.urlsafe_b64encode(b'{"a": 1}').decode(), (int,)),
        (base64.urlsafe_b64encode(b"[NaN]").decode(), (float,)),
        ("A" * (MAX_CURSOR_CHARS + 1), (str,)),
    ],
)
def test_a_cursor_it_did_not_make_is_invalid_argument(cursor: str, kinds: tuple[type, ...]) -> None:
    with pytest.raises(FaceplaneError) as exc:
        decode_cursor(cursor, *kinds, field="page")
    assert exc.value.err.name == "INVALID_ARGUMENT" and exc.value.details == {"field": "page"}
