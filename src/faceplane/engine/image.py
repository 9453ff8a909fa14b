"""Image intake: recognise the format by content, enforce limits, decode, apply EXIF orientation."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from faceplane.errors import Err, FaceplaneError

# Pillow format names accepted; anything else that Pillow can read is refused as unsupported.
SUPPORTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "BMP", "GIF", "TIFF"})

# Magic numbers of image formats we recognise but do not take (so the error says "unsupported"
# rather than "corrupt").
_OTHER_IMAGE_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"ftypheic", 4, "HEIC"),
    (b"ftypheix", 4, "HEIC"),
    (b"ftypmif1", 4, "HEIF"),
    (b"ftypavif", 4, "AVIF"),
    (b"8BPS", 0, "PSD"),
    (b"\x00\x00\x01\x00", 0, "ICO"),
    (b"%PDF", 0, "PDF"),
    (b"\xff\x0a", 0, "JPEG XL"),
    (b"\x00\x00\x00\x0cJXL ", 0, "JPEG XL"),
)


@dataclass(frozen=True)
class ImageLimits:
    """Intake limits, each enforced with its own catalogue code."""

    max_bytes: int = 15 * 1024 * 1024
    max_pixels: int = 50_000_000
    min_side: int = 16
    max_side: int = 12_000


@dataclass
class DecodedImage:
    """An upright RGB uint8 image and what it was."""

    rgb: np.ndarray
    format: str

    @property
    def width(self) -> int:
        """Width in pixels, after EXIF orientation."""
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        """Height in pixels, after EXIF orientation."""
        return int(self.rgb.shape[0])


def sniff_unsupported(data: bytes) -> str | None:
    """Name the format of `data` if it is an image format we recognise but refuse."""
    for magic, offset, name in _OTHER_IMAGE_MAGIC:
        if data[offset : offset + len(magic)] == magic:
            return name
    return None


def check_size(n_bytes: int, limits: ImageLimits) -> None:
    """Refuse a file larger than the byte limit."""
    if n_bytes > limits.max_bytes:
        raise FaceplaneError(
            Err.IMAGE_FILE_TOO_LARGE,
            f"The image is {n_bytes} bytes; the limit is {limits.max_bytes}.",
            size_bytes=n_bytes,
            max_bytes=limits.max_bytes,
        )


def _check_dimensions(width: int, height: int, limits: ImageLimits) -> None:
    if width * height > limits.max_pixels:
        raise FaceplaneError(
            Err.IMAGE_PIXELS_EXCEEDED,
            f"The image has {width}×{height} pixels; the limit is {limits.max_pixels} in all.",
            width=width,
            height=height,
            max_pixels=limits.max_pixels,
        )
    if max(width, height) > limits.max_side:
        raise FaceplaneError(
            Err.IMAGE_DIMENSION_TOO_LARGE,
            f"The image is {width}×{height}; no side may exceed {limits.max_side} px.",
            width=width,
            height=height,
            max_side=limits.max_side,
        )
    if min(width, height) < limits.min_side:
        raise FaceplaneError(
            Err.IMAGE_DIMENSION_TOO_SMALL,
            f"The image is {width}×{height}; each side must be at least {limits.min_side} px.",
            width=width,
            height=height,
            min_side=limits.min_side,
        )


def _to_rgb(img: Image.Image) -> np.ndarray:
    """Flatten any mode to RGB; transparent pixels become white, as on a page."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: scale to 8 bits rather than clip.
        arr = np.asarray(img, dtype=np.float64)
        top = max(float(arr.max()), 1.0)
        img = Image.fromarray((arr * (255.0 / top)).astype(np.uint8))
    return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))


def decode_image(data: bytes, limits: ImageLimits) -> DecodedImage:
    """Decode bytes into an upright RGB image, or raise the precise catalogue error."""
    if not data:
        raise FaceplaneError(Err.IMAGE_EMPTY, "The image is empty (0 bytes).")
    check_size(len(data), limits)
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        other = sniff_unsupported(data)
        if other:
            raise FaceplaneError(
                Err.IMAGE_FORMAT_UNSUPPORTED,
                f"{other} images are not supported; send JPEG, PNG, WebP, BMP, GIF or TIFF.",
                format=other,
            ) from None
        raise FaceplaneError(
            Err.IMAGE_CORRUPT, "The file is not a readable image.", size_bytes=len(data)
        ) from None
    except Image.DecompressionBombError:
        raise FaceplaneError(
            Err.IMAGE_PIXELS_EXCEEDED,
            "The image declares far more pixels than allowed.",
            max_pixels=limits.max_pixels,
        ) from None
    except Exception as exc:  # Pillow raises many types on hostile headers
        raise FaceplaneError(Err.IMAGE_CORRUPT, f"The image header is damaged: {exc}.") from None
    fmt = img.format or "unknown"
    if fmt not in SUPPORTED_FORMATS:
        raise FaceplaneError(
            Err.IMAGE_FORMAT_UNSUPPORTED,
            f"{fmt} images are not supported; send JPEG, PNG, WebP, BMP, GIF or TIFF.",
            format=fmt,
        )
    # The header's size is checked before any pixel is decoded: that stops decompression bombs.
    _check_dimensions(img.width, img.height, limits)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img.seek(0)  # GIF, TIFF, MPO: the first frame
            img.load()
            upright = ImageOps.exif_transpose(img) or img
            rgb = _to_rgb(upright)
    except FaceplaneError:
        raise
    except Exception as exc:
        raise FaceplaneError(
            Err.IMAGE_CORRUPT, f"The image could not be decoded: {exc}.", format=fmt
        ) from None
    return DecodedImage(rgb, fmt)
