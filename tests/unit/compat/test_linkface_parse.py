"""Linkface requests: strict UTF-8 forms, images named by the client's fields, options."""

from __future__ import annotations

import pytest

from faceplane.compat.linkface import parse
from faceplane.compat.linkface.parse import LinkfaceForm
from faceplane.errors import Err, FaceplaneError

BOUNDARY = "b0undary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def multipart(*parts: tuple[str | bytes, bytes, str | None]) -> bytes:
    """A multipart body of (name, value, filename or None) parts."""
    out = b""
    for name, value, filename in parts:
        raw_name = name if isinstance(name, bytes) else name.encode()
        disposition = b'form-data; name="' + raw_name + b'"'
        if filename is not None:
            disposition += f'; filename="{filename}"'.encode()
        out += f"--{BOUNDARY}\r\n".encode() + b"Content-Disposition: " + disposition
        out += b"\r\n\r\n" + value + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


def refused(err: Err, fn: object, *args: object) -> FaceplaneError:
    with pytest.raises(FaceplaneError) as info:
        fn(*args)  # type: ignore[operator]
    assert info.value.err is err, info.value
    return info.value


def test_a_multipart_call_keeps_text_fields_and_upload_bytes_apart() -> None:
    jpeg = b"\xff\xd8\xff\xe0 binary \x00\xff"
    body = multipart(
        ("api_id", b"app_1", None), ("name", "李雷".encode(), None), ("file", jpeg, "a.jpg")
    )
    form = parse.parse_form(MULTIPART, body)
    assert form.fields == {"api_id": "app_1", "name": "李雷"}
    assert form.files == {"file": jpeg}


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded", b"url=%FF%FE"),
        ("application/x-www-form-urlencoded", b"url=http://h/\xff"),
        (MULTIPART, multipart(("url", b"http://h/\xff\xfe", None))),
        (MULTIPART, multipart((b"\xff", b"x", None))),
    ],
    ids=["form-escape", "form-raw-byte", "multipart-value", "multipart-name"],
)
def test_a_parameter_that_is_not_utf8_is_encoding_error(content_type: str, body: bytes) -> None:
    refused(Err.ENCODING_ERROR, parse.parse_form, content_type, body)


def test_a_non_utf8_query_parameter_is_encoding_error() -> None:
    assert parse.parse_query(b"api_id=a&name=%E6%9D%8E") == {"api_id": "a", "name": "李"}
    refused(Err.ENCODING_ERROR, parse.parse_query, b"name=%E6%9D")


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b"{}"),
        ("multipart/form-data", multipart(("a", b"b", None))),
        (MULTIPART, b"--b0undary\r\nno headers here"),
        (MULTIPART, multipart(*[(f"f{i}", b"x", None) for i in range(parse.MAX_PARTS + 1)])),
    ],
    ids=["json", "no-boundary", "malformed", "too-many-parts"],
)
def test_a_body_that_is_not_a_linkface_form_is_invalid_argument(
    content_type: str, body: bytes
) -> None:
    refused(Err.INVALID_ARGUMENT, parse.parse_form, content_type, body)


def test_no_body_type_leaves_the_parameters_to_the_query_string() -> None:
    assert parse.parse_form("", b"ignored") == LinkfaceForm()


@pytest.mark.parametrize("suffix", ["", "1", "2"])
def test_an_image_is_named_by_the_field_it_came_in(suffix: str) -> None:
    upload = LinkfaceForm(files={f"file{suffix}": b"jpeg"}, fields={f"url{suffix}": "http://h"})
    source = parse.image_source(upload, suffix)
    assert (source.field, source.data, source.url) == (f"file{suffix}", b"jpeg", None)
    linked = LinkfaceForm(fields={f"url{suffix}": "http://h"})
    source = parse.image_source(linked, suffix)
    assert (source.field, source.url) == (f"url{suffix}", "http://h")
    missing = refused(Err.INVALID_ARGUMENT, parse.image_source, LinkfaceForm(), suffix)
    assert missing.message == f"must specify 'file{suffix}' or 'url{suffix}' argument"


def test_landmarks68_asks_for_68_landmarks() -> None:
    assert parse.detection_options(LinkfaceForm()) == {"landmarks": 5}
    assert parse.detection_options(LinkfaceForm(fields={"landmarks68": "true"})) == {
        "landmarks": 68
    }


def test_search_needs_a_collection_and_a_top_in_range() -> None:
    form = LinkfaceForm(fields={"collection_id": "c"})
    assert parse.search_options(form) == {"collection_id": "c", "k": 5}
    form.fields["top"] = "12"
    assert parse.search_options(form) == {"collection_id": "c", "k": 12}
    missing = refused(Err.INVALID_ARGUMENT, parse.search_options, LinkfaceForm())
    assert missing.message == "must specify 'collection_id' argument"
    for top in ("0", "101", "ten", ""):
        form.fields["top"] = top
        bad = refused(Err.INVALID_ARGUMENT, parse.search_options, form)
        assert "'top'" in bad.message and bad.details["field"] == "top"
