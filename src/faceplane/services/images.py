"""Turn any image input (upload, base64, URL) into a decoded upright image."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from faceplane.engine.fetch import fetch_url
from faceplane.engine.image import DecodedImage, check_size, decode_image
from faceplane.errors import Err, FaceplaneError
from faceplane.runtime import Runtime


@dataclass(frozen=True)
class ImageSource:
    """One image as the client sent it: raw bytes, a base64 string, or a URL."""

    field: str
    data: bytes | None = None
    base64: str | None = None
    url: str | None = None


def b64decode_checked(field: str, text: str, rt: Runtime) -> bytes:
    """Decode base64 (or a data: URL) after checking the size it will have."""
    if text.startswith("data:") and "," in text:
        text = text.split(",", 1)[1]  # data URLs: drop the "data:image/png;base64," prefix
    # Base64 is 4/3 of the bytes: refuse an oversized string before decoding it.
    check_size(len(text) * 3 // 4, rt.limits)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise FaceplaneError(
            Err.INVALID_ARGUMENT, f"`{field}.base64` is not valid base64.", field=field
        ) from None


def load_image(rt: Runtime, source: ImageSource) -> DecodedImage:
    """Fetch or decode the bytes of `source` and decode them into an image."""
    if source.data is not None:
        data = source.data
    elif source.base64 is not None:
        data = b64decode_checked(source.field, source.base64, rt)
    elif source.url is not None:
        try:
            data = fetch_url(source.url, rt.fetch)
        except FaceplaneError as exc:
            # A download failure names its image too, as a decoding failure does.
            exc.details.setdefault("field", source.field)
            raise
    else:
        raise FaceplaneError(
            Err.MISSING_ARGUMENT, f"No image was given in `{source.field}`.", field=source.field
        )
    try:
        return decode_image(data, rt.limits)
    except FaceplaneError as exc:
        exc.details.setdefault("field", source.field)
        raise
