"""Image intake: formats by content, orientation, limits and broken files."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceplane.engine.image import ImageLimits, decode_image
from faceplane.errors import Err, FaceplaneError

LIMITS = ImageLimits()


def encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def code_of(data: bytes, limits: ImageLimits = LIMITS) -> Err:
    with pytest.raises(FaceplaneError) as info:
        decode_image(data, limits)
    return info.value.err


def gradient(w: int = 64, h: int = 48) -> Image.Image:
    arr = np.zeros((h, w, 3), np.uint8)
    arr[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
    arr[..., 1] = np.linspace(0, 255, h, dtype=np.uint8)[:, None]
    return Image.fromarray(arr)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF"])
def test_every_supported_format_decodes_to_rgb(fmt: str) -> None:
    out = decode_image(encode(gradient(), fmt), LIMITS)
    assert out.rgb.shape == (48, 64, 3) and out.rgb.dtype == np.uint8
    assert out.format == fmt


def test_palette_and_rgba_png_become_rgb_with_white_background() -> None:
    rgba = Image.new("RGBA", (32, 32), (255, 0, 0, 0))
    out = decode_image(encode(rgba, "PNG"), LIMITS)
    assert out.rgb[0, 0].tolist() == [255, 255, 255]
    pal = gradient().convert("P")
    assert decode_image(encode(pal, "PNG"), LIMITS).rgb.shape == (48, 64, 3)


def test_format_is_recognised_by_content_not_name() -> None:
    # The bytes are PNG whatever the client calls them; nothing reads a file name.
    assert decode_image(encode(gradient(), "PNG"), LIMITS).format == "PNG"


def test_exif_orientation_is_applied() -> None:
    img = gradient(64, 48)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    out = decode_image(encode(img, "JPEG", exif=exif), LIMITS)
    assert out.rgb.shape == (64, 48, 3)


def test_empty_file_is_image_empty() -> None:
    assert code_of(b"") is Err.IMAGE_EMPTY


def test_text_file_is_image_corrupt() -> None:
    assert code_of(b"hello, this is not a picture\n" * 10) is Err.IMAGE_CORRUPT


def test_truncated_jpeg_is_image_corrupt() -> None:
    data = encode(gradient(256, 256), "JPEG")
    assert code_of(data[: len(data) // 2]) is Err.IMAGE_CORRUPT


def test_heic_is_unsupported_format() -> None:
    assert code_of(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64) is Err.IMAGE_FORMAT_UNSUPPORTED


def test_ico_is_unsupported_format() -> None:
    assert code_of(encode(gradient(32, 32), "ICO")) is Err.IMAGE_FORMAT_UNSUPPORTED


def test_one_pixel_image_is_too_small() -> None:
    assert code_of(encode(Image.new("RGB", (1, 1)), "PNG")) is Err.IMAGE_DIMENSION_TOO_SMALL


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares a size, with a tiny (bomb-like) compressed body."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_before_decoding() -> None:
    assert code_of(_png_header_only(30_000, 30_000)) is Err.IMAGE_PIXELS_EXCEEDED


def test_oversized_side_is_refused() -> None:
    limits = ImageLimits(max_side=1000, max_pixels=10**9)
    assert code_of(_png_header_only(20_000, 20), limits) is Err.IMAGE_DIMENSION_TOO_LARGE


def test_file_over_byte_limit_is_too_large() -> None:
    limits = ImageLimits(max_bytes=1000)
    assert code_of(b"\xff\xd8" + b"\x00" * 2000, limits) is Err.IMAGE_FILE_TOO_LARGE


BROKEN = {
    "corrupted.png": Err.IMAGE_CORRUPT,
    "empty.png": Err.IMAGE_CORRUPT,  # it holds the text "test"
    "truncated.jpg": Err.IMAGE_CORRUPT,
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_compreface_broken_files_get_their_code(testdata: Path, name: str) -> None:
    data = (
        testdata / "faces/compreface/embedding-calculator/src/services/imgtools/test/files" / name
    ).read_bytes()
    assert code_of(data) is BROKEN[name]


def test_compreface_portrait_in_every_format_decodes_alike(testdata: Path) -> None:
    folder = testdata / "faces/compreface/embedding-calculator/src/services/imgtools/test/files"
    shapes = {}
    for f in sorted(folder.iterdir()):
        if f.name in BROKEN or f.suffix in (".py", ".joblib"):
            continue
        try:
            shapes[f.name] = decode_image(f.read_bytes(), LIMITS).rgb.shape
        except FaceplaneError as exc:
            shapes[f.name] = exc.err  # type: ignore[assignment]
    decoded = {k: v for k, v in shapes.items() if isinstance(v, tuple)}
    assert len(decoded) >= 6, shapes
    assert len(set(decoded.values())) == 1, shapes
