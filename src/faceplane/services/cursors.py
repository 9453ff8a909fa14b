"""Page cursors: the one codec of every `next_cursor` / `cursor` pair of the API.

A cursor is opaque to clients: URL-safe base64 of a JSON array holding the sort key of the
last item of a page (e.g. `[created_at, id]` of a task). Decoding checks the shape and the
type of every part, so a cursor a client made up or mangled is INVALID_ARGUMENT naming the
field, never a database error.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any

from faceplane.errors import Err, FaceplaneError
from faceplane.json_input import parse_json

# Longer than any cursor this codec makes (two ids and a float): refuse before decoding.
MAX_CURSOR_CHARS = 512


def encode_cursor(*key: str | int | float) -> str:
    """The cursor of a page that ended at the item whose sort key is `key`."""
    raw = json.dumps(list(key), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *kinds: type, field: str = "cursor") -> tuple[Any, ...]:
    """The sort key inside `cursor`, one part per type of `kinds` (str, int or float);
    INVALID_ARGUMENT naming `field` for anything this codec did not make."""
    try:
        if len(cursor) > MAX_CURSOR_CHARS:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        # The bounded parser: no lone surrogate (or NUL) inside a cursor reaches the database.
        key = parse_json(raw, field)
    except (ValueError, binascii.Error, FaceplaneError):
        raise _bad(field) from None
    if not isinstance(key, list) or len(key) != len(kinds):
        raise _bad(field)
    return tuple(_part(value, kind, field) for value, kind in zip(key, kinds, strict=True))


def _part(value: Any, kind: type, field: str) -> Any:
    if isinstance(value, bool):
        raise _bad(field)
    if kind is float and isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    # Larger than a 64-bit integer column: no row can be past it, and SQLite would overflow.
    if kind is int and isinstance(value, int) and abs(value) < 2**63:
        return value
    if kind is str and isinstance(value, str) and len(value) <= 200:
        return value
    raise _bad(field)


def _bad(field: str) -> FaceplaneError:
    return FaceplaneError(
        Err.INVALID_ARGUMENT,
        f"`{field}` is not a cursor this server made: pass `next_cursor` of the previous page.",
        field=field,
    )
