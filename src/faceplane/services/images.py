"""Turn any image input (upload, base64, URL) into a decoded upright image.

URLs become bytes in one step before an operation runs: `fetch_images` on the I/O pool under
per-company download slots (synchronous calls), `download_images` inline (task workers).
Decoding (`load_image`, on the inference pool) never touches the network.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from dataclasses import dataclass, replace

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


def b64decode_checked(rt: Runtime, field: str, text: str) -> bytes:
    """Decode base64 (or a data: URL) after checking the size it will have."""
    if text.startswith("data:") and "," in text:
        text = text.split(",", 1)[1]  # data URLs: drop the "data:image/png;base64," prefix
    # Base64 is 4/3 of the bytes: refuse an oversized string before decoding it. Padding
    # carries no bytes; counting it would refuse a file that fits as an upload.
    check_size(len(text.rstrip("=")) * 3 // 4, rt.limits)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise FaceplaneError(
            Err.INVALID_ARGUMENT, f"`{field}.base64` is not valid base64.", field=field
        ) from None


def load_image(rt: Runtime, source: ImageSource) -> DecodedImage:
    """Decode `source` (bytes or base64; a URL must have been downloaded) into an image."""
    # Every failure names the field (which of two images was too large or unreachable).
    try:
        if source.data is not None:
            data = source.data
        elif source.base64 is not None:
            data = b64decode_checked(rt, source.field, source.base64)
        elif source.url is not None:
            # URLs are downloaded before decoding (fetch_images / download_images), never
            # here: decoding runs on the inference pool, which a slow server must not hold.
            raise FaceplaneError(
                Err.INTERNAL, f"`{source.field}` was not downloaded before decoding."
            )
        else:
            raise FaceplaneError(
                Err.MISSING_ARGUMENT, f"No image was given in `{source.field}`.", field=source.field
            )
        return decode_image(data, rt.limits)
    except FaceplaneError as exc:
        exc.details.setdefault("field", source.field)
        raise


def download_image(rt: Runtime, source: ImageSource) -> ImageSource:
    """`source` with its URL downloaded into bytes (within the fetch deadline); else itself."""
    if not _has_url(source):
        return source
    assert source.url is not None
    try:
        data = fetch_url(source.url, rt.fetch)
    except FaceplaneError as exc:
        exc.details.setdefault("field", source.field)
        raise
    return replace(source, data=data, url=None)


def download_images(rt: Runtime, images: dict[str, ImageSource]) -> dict[str, ImageSource]:
    """Every URL of `images` downloaded inline: the path of a task worker, which has no pools."""
    return {name: download_image(rt, source) for name, source in images.items()}


async def fetch_images(
    rt: Runtime, company_id: str, images: dict[str, ImageSource]
) -> dict[str, ImageSource]:
    """Every URL of `images` downloaded on the I/O pool under the company's fetch slots: the
    step before a synchronous operation is handed to the inference pool."""
    names = [n for n, s in images.items() if _has_url(s)]
    if not names:
        return images
    fetched = await asyncio.gather(*(_fetch_one(rt, company_id, images[n]) for n in names))
    return {**images, **dict(zip(names, fetched, strict=True))}


def _has_url(source: ImageSource) -> bool:
    """True when `source` still has to be downloaded."""
    return source.url is not None and source.data is None and source.base64 is None


async def _fetch_one(rt: Runtime, company_id: str, source: ImageSource) -> ImageSource:
    slots = rt.fetch_slots
    give_up = time.monotonic() + rt.settings.fetch_slot_wait_s
    while (full := slots.try_take(company_id)) is not None:
        if time.monotonic() >= give_up:
            raise _no_slot(rt, full, source)
        await asyncio.sleep(0.05)  # a short download ends soon: wait briefly, then refuse

    def download() -> ImageSource:
        try:
            return download_image(rt, source)
        finally:
            slots.give_back(company_id)

    # The slot comes back when the download's thread ends (by the deadline), not when the
    # request does: a caller who hangs up cannot start more downloads than its cap.
    running = asyncio.ensure_future(rt.run_io(download))
    running.add_done_callback(_consume)
    return await asyncio.shield(running)


def _consume(done: asyncio.Future[ImageSource]) -> None:
    # A shielded download whose request was cancelled still ends; its error is nobody's.
    if not done.cancelled():
        done.exception()


def _no_slot(rt: Runtime, full: Err, source: ImageSource) -> FaceplaneError:
    slots = rt.fetch_slots
    if full is Err.RATE_LIMIT_EXCEEDED:
        return FaceplaneError(
            full,
            f"This company already has {slots.per_company} image URL downloads in flight; "
            "try again when one ends.",
            field=source.field,
            limit=slots.per_company,
            retry_after_s=1,
        )
    return FaceplaneError(
        full,
        f"The server already has {slots.total} image URL downloads in flight; try again soon.",
        field=source.field,
        limit=slots.total,
        retry_after_s=1,
    )
