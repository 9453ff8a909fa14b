"""One quality policy: what `/v1/detect` reports as `issues` is exactly what enroll refuses."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageFilter

from faceplane.services.enroll import GATE_CODES
from faceplane.settings import Settings
from support import authed_client

LFW = "lfw_view1/images"
# Pitch between 30° and 35°: an old detect policy (30°) called them not frontal while the
# enroll gate (35°) took them. A fixed sample of LFW (every 125th image) adds 40 more.
BORDERLINE = (
    "Fabiola_Zuluaga/Fabiola_Zuluaga_0001.jpg",
    "Jonathan_Edwards/Jonathan_Edwards_0002.jpg",
)
DEEPFACE = ("img1.jpg", "img2.jpg", "img17.jpg", "img30.jpg", "couple.jpg")


def jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def scaled(img: Image.Image, factor: float) -> Image.Image:
    """The photo's brightness times `factor`."""
    return Image.fromarray(np.clip(np.asarray(img, np.float32) * factor, 0, 255).astype(np.uint8))


def photos(testdata: Path) -> list[tuple[str, bytes]]:
    """Real photos, and real photos made too small, blurry, dark, bright or cut."""
    lfw = sorted((testdata / LFW).glob("*/*.jpg"))
    chosen = [*(testdata / LFW / b for b in BORDERLINE), *lfw[::125]]
    chosen += [testdata / "faces/deepface/images" / name for name in DEEPFACE]
    out = [(str(p.relative_to(testdata)), p.read_bytes()) for p in chosen]
    base = Image.open(chosen[2]).convert("RGB")
    out += [
        ("small", jpeg(base.resize((100, 100)))),
        ("blurred", jpeg(base.filter(ImageFilter.GaussianBlur(4)))),
        ("dark", jpeg(scaled(base, 0.25))),
        ("bright", jpeg(scaled(base, 4.0))),
        ("cut", jpeg(base.crop((0, 0, base.width // 2 + 10, base.height)))),
    ]
    return out


@pytest.fixture(
    scope="module",
    params=[
        {},
        {"quality_min_inter_eye_px": 45, "quality_filter": "HIGH"},
    ],
    ids=["default policy", "strict policy"],
)
def client(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("quality") / "data", workers=0, **request.param
    )
    with authed_client(settings) as c:
        yield c


def new_id(client: TestClient, path: str, **body: str) -> str:
    resp = client.post(path, json=body)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def test_detect_issues_predict_exactly_what_enroll_refuses(
    client: TestClient, testdata: Path
) -> None:
    cid = new_id(client, "/v1/collections", name="quality", kind="gallery")
    outcomes: dict[str, int] = {"accepted": 0, "refused": 0}
    for i, (name, data) in enumerate(photos(testdata)):
        detected = client.post("/v1/detect", files={"image": ("p.jpg", data)})
        assert detected.status_code == 200, (name, detected.text)
        issues = detected.json()["faces"][0]["quality"]["issues"]  # enroll takes the largest
        sid = new_id(client, f"/v1/collections/{cid}/subjects", name=f"person {i}")
        enrolled = client.post(
            f"/v1/collections/{cid}/subjects/{sid}/faces", files={"image": ("p.jpg", data)}
        )
        if not issues:
            assert enrolled.status_code == 201, (name, enrolled.text)
            outcomes["accepted"] += 1
            continue
        outcomes["refused"] += 1
        assert enrolled.status_code == 422, (name, issues, enrolled.text)
        err: dict[str, Any] = enrolled.json()["error"]
        assert err["code"] == GATE_CODES[issues[0]].name, (name, issues, err)
        reasons = list(dict.fromkeys(r["reason"] for r in err["details"]["reasons"]))
        assert reasons == issues, (name, err["details"])
    # Both outcomes happen, or the test proves nothing.
    assert outcomes["accepted"] >= 5 and outcomes["refused"] >= 4, outcomes


def test_detect_reports_the_policy_of_the_settings(client: TestClient, testdata: Path) -> None:
    settings = client.app.state.rt.settings  # type: ignore[attr-defined]
    photo = testdata / LFW / BORDERLINE[1]
    face = client.post("/v1/detect", files={"image": ("p.jpg", photo.read_bytes())}).json()[
        "faces"
    ][0]
    quality = face["quality"]
    bar = client.app.state.rt.quality_policy().min_score()  # type: ignore[attr-defined]
    expected = quality["inter_eye_px"] < settings.quality_min_inter_eye_px, quality["score"] < bar
    assert ("too_small" in quality["issues"], "low_score" in quality["issues"]) == expected
