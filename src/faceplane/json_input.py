"""JSON sent by clients, parsed in one place: bounded nesting and size, text the server can store.

Python's parser recurses once per level (100,000 levels raise RecursionError), turns a 20 MB
body of ``[{},{},...]`` into ~500 MB of objects, and accepts ``"\\ud800"``, a lone surrogate that
no UTF-8 encoder (hashing, the database, a log line) accepts later. Every JSON document a client
sends goes through `parse_json`, so each of these is a 4xx answer at the boundary, never a 500
deep inside a service.
"""

from __future__ import annotations

import json
import re
from typing import Any, NoReturn

from faceplane.errors import Err, FaceplaneError

MAX_DEPTH = 64
"""Deepest nesting of arrays and objects accepted (the top level is depth 1)."""

MAX_ITEMS = 200_000
"""Most values (array items, object members, containers) in one document."""

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')

# `reason` details of the refusals: the first two are a document that is not JSON at all (a route
# may answer those in its own way); the others are hostile documents refused before any route.
NOT_JSON = frozenset({"syntax", "encoding"})


def _refuse(err: Err, message: str, reason: str, field: str | None, **details: Any) -> NoReturn:
    where = {"field": field} if field else {}
    raise FaceplaneError(err, message, reason=reason, **where, **details)


def _count_items(text: str) -> int:
    """An upper bound of the values in `text`, exact enough to compare with MAX_ITEMS."""
    if len(text) <= MAX_ITEMS:
        return len(text)  # each value takes at least one character
    # A document holds at most one value more than its `,` `[` and `{`; commas inside strings
    # count too, so a document past the bound is counted again without its strings.
    count = _structure(text)
    return _structure(_STRING.sub('""', text)) if count > MAX_ITEMS else count


def _structure(text: str) -> int:
    return text.count(",") + text.count("[") + text.count("{")


def _may_hold_bad_text(text: str) -> bool:
    """Whether a string of the document may hold a surrogate or a NUL: only an escape puts one
    there in text decoded from UTF-8; text given as str may hold raw ones."""
    return "\\u" in text or not text.isascii()


def _check_text(value: str, where: str, field: str | None) -> None:
    if "\x00" in value:
        _refuse(Err.INVALID_ARGUMENT, f"{where} holds a NUL character (\\u0000).", "nul", field)
    if value.isascii():  # O(1) in CPython: most strings, however long, stop here
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(value[exc.start])
        _refuse(
            Err.ENCODING_ERROR,
            f"{where} holds a lone surrogate (\\u{code:04x}): text must be valid Unicode.",
            "surrogate",
            field,
        )


def _check_tree(value: Any, where: str, field: str | None, texts: bool) -> None:
    """Walk the parsed document without recursion: depth, and each key and string if asked."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > MAX_DEPTH:
                _refuse(
                    Err.INVALID_ARGUMENT,
                    f"{where} nests arrays and objects deeper than {MAX_DEPTH} levels.",
                    "depth",
                    field,
                    max_depth=MAX_DEPTH,
                )
            if isinstance(node, dict):
                if texts:
                    for key in node:
                        _check_text(key, where, field)
                stack.extend((v, depth + 1) for v in node.values())
            else:
                stack.extend((v, depth + 1) for v in node)
        elif texts and isinstance(node, str):
            _check_text(node, where, field)


def parse_json(raw: bytes | str, field: str | None = None) -> Any:
    """Parse a client's JSON document (a body, or the text of form field `field`).

    Raises FaceplaneError: ENCODING_ERROR for bytes that are not UTF-8 or a lone surrogate,
    INVALID_ARGUMENT for text that is not JSON, nesting past MAX_DEPTH or a NUL character,
    PAYLOAD_TOO_LARGE for more than MAX_ITEMS values. Each carries `reason` in its details.
    """
    where = f"`{field}`" if field else "The body"
    if isinstance(raw, bytes | bytearray):
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            _refuse(Err.ENCODING_ERROR, f"{where} is not valid UTF-8.", "encoding", field)
    else:
        text = raw
    if _count_items(text) > MAX_ITEMS:
        _refuse(
            Err.PAYLOAD_TOO_LARGE,
            f"{where} holds more than {MAX_ITEMS} JSON values.",
            "items",
            field,
            max_items=MAX_ITEMS,
        )
    try:
        value = json.loads(text)
    except RecursionError:
        _refuse(
            Err.INVALID_ARGUMENT,
            f"{where} nests arrays and objects deeper than {MAX_DEPTH} levels.",
            "depth",
            field,
            max_depth=MAX_DEPTH,
        )
    except json.JSONDecodeError as exc:
        _refuse(
            Err.INVALID_ARGUMENT,
            f"{where} is not valid JSON: {exc.msg}.",
            "syntax",
            field,
            position=exc.pos,
        )
    _check_tree(value, where, field, texts=_may_hold_bad_text(text))
    return value
