"""The one parser of client JSON: bounded nesting and size, text the server can store."""

from __future__ import annotations

import json

import pytest

from faceplane.api.handlers import printable
from faceplane.errors import Err, FaceplaneError
from faceplane.json_input import MAX_DEPTH, MAX_ITEMS, parse_json
from faceplane.settings import Settings


def refusal(raw: bytes | str, field: str | None = None) -> FaceplaneError:
    with pytest.raises(FaceplaneError) as caught:
        parse_json(raw, field)
    return caught.value


@pytest.mark.parametrize("kind", [bytes, str])
def test_nesting_to_the_bound_is_accepted_and_one_more_level_is_invalid_argument(
    kind: type,
) -> None:
    def doc(depth: int) -> bytes | str:
        text = '{"a":' * (depth - 1) + "[]" + "}" * (depth - 1)
        return text.encode() if kind is bytes else text

    assert parse_json(doc(MAX_DEPTH)) is not None
    exc = refusal(doc(MAX_DEPTH + 1))
    assert exc.err is Err.INVALID_ARGUMENT
    assert exc.details == {"reason": "depth", "max_depth": MAX_DEPTH}


def test_nesting_100000_deep_is_invalid_argument_not_a_recursion_error() -> None:
    exc = refusal("[" * 100_000 + "]" * 100_000)
    assert exc.err is Err.INVALID_ARGUMENT and exc.details["reason"] == "depth"


@pytest.mark.parametrize(
    "text",
    ['"\\ud800"', '{"\\udfff": 1}', '["ok", {"k": ["\\uDBFF"]}]', '"a\\ud800\\ud800b"'],
)
def test_a_lone_surrogate_anywhere_is_an_encoding_error(text: str) -> None:
    exc = refusal(text.encode(), "payload")
    assert exc.err is Err.ENCODING_ERROR
    assert exc.details == {"reason": "surrogate", "field": "payload"}


def test_a_lone_surrogate_in_text_given_as_str_is_an_encoding_error() -> None:
    assert refusal('["\ud800"]').err is Err.ENCODING_ERROR


def test_surrogate_pairs_and_escaped_backslashes_are_ordinary_text() -> None:
    assert parse_json(b'["\\ud83d\\ude00", "\\\\ud800"]') == ["\U0001f600", "\\ud800"]


def test_a_nul_character_is_invalid_argument() -> None:
    exc = refusal(b'{"name": "a\\u0000"}')
    assert exc.err is Err.INVALID_ARGUMENT and exc.details["reason"] == "nul"


def test_more_values_than_the_bound_is_payload_too_large() -> None:
    ok = "[" + "0," * (MAX_ITEMS - 2) + "0]"
    assert len(parse_json(ok)) == MAX_ITEMS - 1
    exc = refusal("[" + "{}," * MAX_ITEMS + "{}]")
    assert exc.err is Err.PAYLOAD_TOO_LARGE
    assert exc.details == {"reason": "items", "max_items": MAX_ITEMS}


def test_commas_inside_strings_are_not_counted_as_values() -> None:
    text = json.dumps({"note": "," * (3 * MAX_ITEMS)})
    assert parse_json(text) == {"note": "," * (3 * MAX_ITEMS)}


def test_bytes_that_are_not_utf8_and_text_that_is_not_json_keep_their_codes() -> None:
    exc = refusal(b'{"a": "\xff"}')
    assert exc.err is Err.ENCODING_ERROR and exc.details["reason"] == "encoding"
    exc = refusal(b"{", "options")
    assert exc.err is Err.INVALID_ARGUMENT
    assert exc.details == {"reason": "syntax", "field": "options", "position": 1}


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("/v1/x\n2030-01-01 INFO forged", "/v1/x\\n2030-01-01 INFO forged"),
        ("/a\r\x1b[2J\x00", "/a\\r\\x1b[2J\\x00"),
        ("/a\u2028b\x85", "/a\\u2028b\\x85"),
        ("/café/é", "/café/é"),
    ],
)
def test_logged_request_fields_hold_no_control_characters(raw: str, shown: str) -> None:
    assert printable(raw) == shown
    assert printable(printable(raw)) == shown  # escaping twice changes nothing


def test_trusted_proxies_are_read_as_a_list_of_addresses_or_networks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FACEPLANE_TRUSTED_PROXIES", " 10.0.0.1, 192.168.0.0/16 ,::1")
    assert Settings().trusted_proxies == ["10.0.0.1", "192.168.0.0/16", "::1"]
    monkeypatch.setenv("FACEPLANE_TRUSTED_PROXIES", '["10.0.0.2"]')
    assert Settings().trusted_proxies == ["10.0.0.2"]
    monkeypatch.delenv("FACEPLANE_TRUSTED_PROXIES")
    assert Settings().trusted_proxies == []
    monkeypatch.setenv("FACEPLANE_TRUSTED_PROXIES", "10.0.0.1,proxy.example")
    with pytest.raises(ValueError, match=r"proxy\.example"):
        Settings()
