"""Hypothesis fuzz of image intake (engine.image): arbitrary bytes, and real images of every
accepted format (made here with Pillow) with bits flipped, bytes overwritten, spans cut or
repeated, and header sizes forged.

decode_image must only ever return an upright RGB image inside the limits, or raise a
FaceplaneError with an image code of the catalogue; check_size refuses exactly what is over.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from faceplane.engine.image import ImageLimits, check_size, decode_image
from faceplane.errors import Err, FaceplaneError
from mutations import byte_edits, mutate

# Pillow warns of every damaged tag it skips; a damaged file is what this fuzz sends.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SCALE = max(1, int(os.environ.get("FACEPLANE_FUZZ_SCALE", "1")))
# Small limits: every limit is reachable by a forged header, and nothing decodes for long.
LIMITS = ImageLimits(max_bytes=64_000, max_pixels=250_000, min_side=16, max_side=1_000)
IMAGE_CODES = frozenset(
    {
        Err.IMAGE_EMPTY,
        Err.IMAGE_CORRUPT,
        Err.IMAGE_FORMAT_UNSUPPORTED,
        Err.IMAGE_FILE_TOO_LARGE,
        Err.IMAGE_PIXELS_EXCEEDED,
        Err.IMAGE_DIMENSION_TOO_LARGE,
        Err.IMAGE_DIMENSION_TOO_SMALL,
    }
)


def _picture(w: int, h: int, mode: str = "RGB") -> Image.Image:
    """A gradient with noise: compresses like a photo, not like a flat fill."""
    rng = np.random.default_rng(w * 1000 + h)
    arr = np.zeros((h, w, 3), np.uint8)
    arr[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
    arr[..., 1] = np.linspace(0, 255, h, dtype=np.uint8)[:, None]
    arr[..., 2] = rng.integers(0, 255, (h, w), dtype=np.uint8)
    img = Image.fromarray(arr)
    return img if mode == "RGB" else img.convert(mode)


def _save(img: Image.Image, fmt: str, **options: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **options)
    return buf.getvalue()


def _exif_rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° on display
    return _save(_picture(40, 24), "JPEG", exif=exif.tobytes())


def _animated_gif() -> bytes:
    frames = [_picture(32, 32, "P"), _picture(32, 32, "P").rotate(90)]
    return _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)


def _seeds() -> dict[str, bytes]:
    """One small image per accepted format and the variants each format's decoder branches on."""
    rgb, rgba = _picture(48, 32), _picture(48, 32, "RGBA")
    i16 = Image.fromarray(np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 60)
    return {
        "jpeg": _save(rgb, "JPEG", quality=80),
        "jpeg-progressive": _save(rgb, "JPEG", progressive=True),
        "jpeg-grey": _save(_picture(32, 32, "L"), "JPEG"),
        "jpeg-cmyk": _save(_picture(32, 32, "CMYK"), "JPEG"),
        "jpeg-exif": _exif_rotated_jpeg(),
        "png": _save(rgb, "PNG"),
        "png-rgba": _save(rgba, "PNG"),
        "png-palette": _save(_picture(32, 32, "P"), "PNG", transparency=0),
        "png-16bit": _save(i16, "PNG"),
        "gif": _save(_picture(32, 32, "P"), "GIF"),
        "gif-animated": _animated_gif(),
        "webp-lossy": _save(rgb, "WEBP", quality=60),
        "webp-lossless": _save(rgba, "WEBP", lossless=True),
        "tiff": _save(rgb, "TIFF"),
        "tiff-lzw": _save(rgb, "TIFF", compression="tiff_lzw"),
        "tiff-deflate": _save(rgba, "TIFF", compression="tiff_adobe_deflate"),
        "tiff-packbits": _save(_picture(32, 32, "L"), "TIFF", compression="packbits"),
        "bmp": _save(rgb, "BMP"),
        "bmp-palette": _save(_picture(32, 32, "P"), "BMP"),
    }


SEEDS = _seeds()


def assert_contract(data: bytes, limits: ImageLimits = LIMITS) -> None:
    """An upright RGB image within the limits, or a FaceplaneError with an image code."""
    try:
        out = decode_image(data, limits)
    except FaceplaneError as exc:
        assert exc.err in IMAGE_CODES, exc.err
        return
    assert out.rgb.dtype == np.uint8 and out.rgb.ndim == 3 and out.rgb.shape[2] == 3
    assert out.rgb.flags["C_CONTIGUOUS"]
    assert limits.min_side <= min(out.width, out.height)
    assert max(out.width, out.height) <= limits.max_side
    assert out.width * out.height <= limits.max_pixels


def _run(name: str, test: Callable[[], None], amount: str, fuzz_time: Any) -> None:
    start = time.monotonic()
    test()
    fuzz_time(f"image decoding: {name}", time.monotonic() - start, amount)


def _profile(n: int) -> settings:
    return settings(settings.get_profile("faceplane-fuzz"), max_examples=n * SCALE)


def test_arbitrary_bytes_decode_or_raise_an_image_error(fuzz_time: Any) -> None:
    # Formats are recognised by their first bytes: start half the inputs with a real magic.
    magics = st.sampled_from([b"", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"BM"])
    prefix = magics | st.sampled_from([b"RIFF\x00\x00\x00\x00WEBP", b"II*\x00", b"MM\x00*"])

    @_profile(300)
    @given(head=prefix, body=st.binary(max_size=2048))
    def run(head: bytes, body: bytes) -> None:
        assert_contract(head + body)

    _run("arbitrary bytes", run, f"{300 * SCALE} inputs", fuzz_time)


def test_mutated_images_of_every_format_decode_or_raise_an_image_error(fuzz_time: Any) -> None:
    names = sorted(SEEDS)

    @_profile(400)
    @given(name=st.sampled_from(names), data=st.data())
    def run(name: str, data: Any) -> None:
        seed = SEEDS[name]
        edits = data.draw(byte_edits())
        assert_contract(mutate(seed, edits))

    _run("mutated images", run, f"{400 * SCALE} inputs from {len(names)} seeds", fuzz_time)


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_every_seed_image_decodes(name: str) -> None:
    # The mutations only mean something if the unmutated seeds are readable.
    out = decode_image(SEEDS[name], LIMITS)
    assert out.width >= 16 and out.height >= 16


@given(
    n_bytes=st.integers(0, 2**64),
    max_bytes=st.integers(0, 2**40),
)
@settings(settings.get_profile("faceplane-fuzz"), max_examples=200)
def test_check_size_refuses_exactly_the_files_over_the_limit(n_bytes: int, max_bytes: int) -> None:
    limits = ImageLimits(max_bytes=max_bytes)
    try:
        check_size(n_bytes, limits)
    except FaceplaneError as exc:
        assert exc.err is Err.IMAGE_FILE_TOO_LARGE and n_bytes > max_bytes
        assert exc.details == {"size_bytes": n_bytes, "max_bytes": max_bytes}
    else:
        assert n_bytes <= max_bytes
