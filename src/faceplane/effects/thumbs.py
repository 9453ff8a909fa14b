"""Thumbnails and crops encoded as JPEG."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

THUMB_SIDES = (300, 100)  # thumb1, thumb2 (Pho.to's two thumbnail sizes)


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    """Encode an RGB uint8 array as JPEG."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def thumbnail(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """Shrink so that the longest side is at most `max_side` (never enlarges)."""
    img = Image.fromarray(rgb)
    img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return np.asarray(img)


def crop_box(
    rgb: np.ndarray, box: tuple[float, float, float, float], margin: float, size: int | None
) -> np.ndarray:
    """Cut a square around a face box, enlarged by `margin` per side, padded with edge pixels
    where it leaves the image, and resized to `size`×`size` when given."""
    x, y, w, h = box
    side = max(w, h) * (1 + 2 * margin)
    cx, cy = x + w / 2, y + h / 2
    x1, y1 = round(cx - side / 2), round(cy - side / 2)
    s = max(round(side), 1)
    height, width = rgb.shape[:2]
    pad_l, pad_t = max(0, -x1), max(0, -y1)
    pad_r, pad_b = max(0, x1 + s - width), max(0, y1 + s - height)
    region = rgb[max(y1, 0) : min(y1 + s, height), max(x1, 0) : min(x1 + s, width)]
    if pad_l or pad_t or pad_r or pad_b:
        region = np.pad(region, ((pad_t, pad_b), (pad_l, pad_r), (0, 0)), mode="edge")
    if size:
        region = np.asarray(Image.fromarray(region).resize((size, size), Image.Resampling.LANCZOS))
    return np.ascontiguousarray(region)
