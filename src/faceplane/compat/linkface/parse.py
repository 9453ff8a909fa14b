"""Reading Linkface requests (seed 003): form fields strictly as UTF-8, images by their fields.

A Linkface call is a form (``multipart/form-data`` or ``application/x-www-form-urlencoded``,
plus the query string). A parameter that is not UTF-8 is ``ENCODING_ERROR``: Starlette's own
form parser falls back to Latin-1 silently, so the forms are parsed here, from the bytes.
Images come as an upload ``file<n>`` or a ``url<n>``, and every error about an image names
the field the client used (``file2``, ``url``), never the operation's slot (``image2``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from faceplane.errors import Err, FaceplaneError
from faceplane.services.images import ImageSource

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

__all__ = [
    "MAX_PARTS",
    "TOP_RANGE",
    "LinkfaceForm",
    "detection_options",
    "image_source",
    "parse_form",
    "parse_query",
    "search_options",
]

MAX_PARTS = 100  # a Linkface call has a handful of fields; more is not a Linkface client
TOP_RANGE = (1, 100)  # candidates a search may ask for (the search service's own bounds)
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"


@dataclass
class LinkfaceForm:
    """The text fields and the uploaded files of one call."""

    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)


def _utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FaceplaneError(Err.ENCODING_ERROR, f"{what} is not UTF-8.") from None


def _pairs(raw: bytes, what: str) -> dict[str, str]:
    # Both raw bytes and %-escapes must be UTF-8: parse_qsl checks only the escapes.
    try:
        return dict(parse_qsl(_utf8(raw, what), encoding="utf-8", errors="strict"))
    except UnicodeDecodeError:
        raise FaceplaneError(Err.ENCODING_ERROR, f"{what} is not UTF-8.") from None


def parse_query(query: bytes) -> dict[str, str]:
    """The query string's parameters; ENCODING_ERROR when one is not UTF-8."""
    return _pairs(query, "A query parameter")


def parse_form(content_type: str, body: bytes) -> LinkfaceForm:
    """The fields and files of a body; ENCODING_ERROR for a field that is not UTF-8."""
    kind, options = parse_options_header(content_type)
    kind_text = kind.decode("latin-1").lower()
    if not kind_text:
        return LinkfaceForm()  # no body type: the parameters are in the query string
    if kind_text == FORM:
        return LinkfaceForm(fields=_pairs(body, "A parameter"))
    if kind_text == MULTIPART:
        boundary = options.get(b"boundary")
        if not boundary:
            raise FaceplaneError(Err.INVALID_ARGUMENT, "The multipart body has no boundary.")
        return _multipart(boundary, body)
    raise FaceplaneError(
        Err.INVALID_ARGUMENT, f"Send {MULTIPART} or {FORM}.", content_type=kind_text[:100]
    )


class _Parts:
    """Collects the parts of a multipart body from python-multipart's callbacks."""

    def __init__(self) -> None:
        self.form = LinkfaceForm()
        self.count = 0
        self._header = b""
        self._value = b""
        self._disposition = b""
        self._data = bytearray()

    def on_part_begin(self) -> None:
        self.count += 1
        if self.count > MAX_PARTS:
            raise FaceplaneError(
                Err.INVALID_ARGUMENT, f"A call has at most {MAX_PARTS} fields.", max=MAX_PARTS
            )
        self._disposition = b""
        self._data = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def on_header_end(self) -> None:
        if self._header.lower() == b"content-disposition":
            self._disposition = self._value
        self._header = self._value = b""

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        self._data += data[start:end]

    def on_part_end(self) -> None:
        _, options = parse_options_header(self._disposition)
        raw_name = options.get(b"name")
        if raw_name is None:
            raise FaceplaneError(Err.INVALID_ARGUMENT, "A multipart part has no field name.")
        name = _utf8(raw_name, "A field name")
        if b"filename" in options:
            self.form.files[name] = bytes(self._data)
        else:
            self.form.fields[name] = _utf8(bytes(self._data), f"The parameter {name!r}")


def _multipart(boundary: bytes, body: bytes) -> LinkfaceForm:
    parts = _Parts()
    callbacks: MultipartCallbacks = {
        "on_part_begin": parts.on_part_begin,
        "on_header_field": parts.on_header_field,
        "on_header_value": parts.on_header_value,
        "on_header_end": parts.on_header_end,
        "on_part_data": parts.on_part_data,
        "on_part_end": parts.on_part_end,
    }
    parser = MultipartParser(boundary, callbacks)
    try:
        parser.write(body)
        parser.finalize()
    except FormParserError:
        raise FaceplaneError(Err.INVALID_ARGUMENT, "The multipart body is malformed.") from None
    return parts.form


def image_source(form: LinkfaceForm, suffix: str = "") -> ImageSource:
    """The image given as ``file<suffix>`` (an upload) or ``url<suffix>``, named by that field;
    the seed's INVALID_ARGUMENT when neither is given."""
    upload, url = "file" + suffix, "url" + suffix
    data = form.files.get(upload)
    if data is not None:
        return ImageSource(upload, data=data)
    if form.fields.get(url):
        return ImageSource(url, url=form.fields[url])
    raise FaceplaneError(
        Err.INVALID_ARGUMENT, f"must specify '{upload}' or '{url}' argument", field=upload
    )


def detection_options(form: LinkfaceForm) -> dict[str, Any]:
    """Detect options: ``landmarks68=true`` asks for 68 landmarks instead of 5."""
    return {"landmarks": 68 if form.fields.get("landmarks68") == "true" else 5}


def search_options(form: LinkfaceForm) -> dict[str, Any]:
    """Search options: the required ``collection_id`` and ``top`` (candidates, default 5)."""
    collection_id = form.fields.get("collection_id")
    if not collection_id:
        raise FaceplaneError(
            Err.INVALID_ARGUMENT, "must specify 'collection_id' argument", field="collection_id"
        )
    raw = form.fields.get("top", "5")
    low, high = TOP_RANGE
    try:
        top = int(raw)
    except ValueError:
        top = 0
    if not low <= top <= high:
        raise FaceplaneError(
            Err.INVALID_ARGUMENT,
            f"'top' must be an integer from {low} to {high}, not {raw[:20]!r}",
            field="top",
        )
    return {"collection_id": collection_id, "k": top}
