"""End-to-end latency of /v1/detect on a 640×480 photo over real HTTP, vs face_recognition.

    python bench/latency.py [--n 50] [--image PATH]

Starts `faceplane serve` on a free port, posts the same JPEG --n times per mode, and prints
p50/p95. The reference is the face_recognition library on the same decoded image, in-process
(face_locations, and face_locations + face_encodings), so its numbers exclude HTTP and decode.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import pct, print_table, serving, testdata_dir


def photo_640x480(path: Path | None) -> bytes:
    """A 640×480 JPEG with one face: the given photo, or a testdata portrait."""
    src = path or testdata_dir() / "faces/face_recognition/examples/obama-480p.jpg"
    img = Image.open(src).convert("RGB")
    img = img.resize((640, 480))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def main() -> None:
    """Measure and print the table."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--image", type=Path)
    args = ap.parse_args()
    jpeg = photo_640x480(args.image)
    rows = []
    with serving() as (client, base):
        for label, form in (
            ("faceplane /v1/detect", {}),
            ("faceplane /v1/detect, return_embedding", {"return_embedding": "true"}),
        ):
            times = []
            for i in range(args.n + 3):
                start = time.perf_counter()
                resp = client.post(base + "/v1/detect", files={"image": ("a.jpg", jpeg)}, data=form)
                elapsed = time.perf_counter() - start
                resp.raise_for_status()
                if i >= 3:  # the first calls load the models
                    times.append(elapsed)
            faces = len(resp.json()["faces"])
            rows.append([label, str(faces), f"{pct(times, 0.5):.1f}", f"{pct(times, 0.95):.1f}"])

    import face_recognition

    rgb = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
    for label, fn in (
        (
            "face_recognition face_locations (in-process)",
            lambda: face_recognition.face_locations(rgb),
        ),
        (
            "face_recognition locations + encodings (in-process)",
            lambda: face_recognition.face_encodings(rgb, face_recognition.face_locations(rgb)),
        ),
    ):
        fn()
        times = []
        out = None
        for _ in range(max(5, args.n // 5)):
            start = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - start)
        rows.append(
            [label, str(len(out or [])), f"{pct(times, 0.5):.1f}", f"{pct(times, 0.95):.1f}"]
        )
    print(f"640×480 JPEG, {args.n} requests per mode, one client")
    print_table(["pipeline", "faces", "p50 ms", "p95 ms"], rows)


if __name__ == "__main__":
    main()
