"""POST /v1/compare: identity on real photos, embeddings as input, and its errors."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from faceplane.engine.embed import similarity
from faceplane.runtime import Runtime
from faceplane.services.faces import DetectRequest, detect_faces
from faceplane.services.images import ImageSource


def embed(rt: Runtime, path: Path) -> np.ndarray | None:
    """The largest face's embedding, through the same service as /v1/detect."""
    body = detect_faces(
        rt, ImageSource("image", data=path.read_bytes()), DetectRequest(return_embedding=True)
    )
    return np.asarray(body["faces"][0]["embedding"]) if body["faces"] else None


def separation(vectors: dict[str, np.ndarray], who: dict[str, str]) -> tuple[float, float, float]:
    """Lowest same-person similarity, highest different-person one, and the AUC."""
    same, diff = [], []
    for a, b in itertools.combinations(sorted(vectors), 2):
        sim = (1 + float(vectors[a] @ vectors[b])) / 2
        (same if who[a] == who[b] else diff).append(sim)
    s, d = np.asarray(same), np.asarray(diff)
    auc = float(np.mean(s[:, None] > d[None, :]))
    return float(s.min()), float(d.max()), auc


def test_johns_same_person_scores_above_different(rt: Runtime, testdata: Path) -> None:
    root = testdata / "faces/dlib/examples/johns"
    vectors, who = {}, {}
    for f in sorted(root.glob("*/*.jpg")):
        vec = embed(rt, f)
        if vec is not None:
            vectors[f.name], who[f.name] = vec, f.parent.name
    assert len(vectors) >= 50  # 55 tight 150×150 chips
    _, _, auc = separation(vectors, who)
    assert auc > 0.99
    name = rt.pool.embedding_space()  # the vectors' space (fused when MobileFaceNet is in)
    threshold, calibration = rt.compare_threshold(name), rt.calibration(name)
    errors = sum(
        (similarity(vectors[a], vectors[b], calibration)[0] >= threshold) != (who[a] == who[b])
        for a, b in itertools.combinations(sorted(vectors), 2)
    )
    pairs = len(vectors) * (len(vectors) - 1) // 2
    assert errors / pairs < 0.02


def test_deepface_same_person_scores_above_different(rt: Runtime, testdata: Path) -> None:
    root = testdata / "faces/deepface/images"
    rows = list(csv.DictReader((root / "identities.csv").open()))
    vectors, who = {}, {}
    for row in rows:
        vec = embed(rt, root / row["file"])
        if vec is not None:
            vectors[row["file"]], who[row["file"]] = vec, row["identity"]
    assert len(vectors) >= 55
    _, _, auc = separation(vectors, who)
    assert auc > 0.97


def test_compare_two_photos_of_one_person_matches(client: TestClient, testdata: Path) -> None:
    root = testdata / "faces/deepface/images"
    resp = client.post(
        "/v1/compare",
        files={
            "image1": ("a", (root / "img1.jpg").read_bytes()),
            "image2": ("b", (root / "img2.jpg").read_bytes()),
        },
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["match"] is True and body["similarity"] >= body["threshold"]
    assert 0 <= body["similarity"] <= 1 and body["distance"] >= 0
    assert body["face1"]["box"]["width"] > 0 and body["face2"]["index"] == 0
    assert body["model"] == client.app.state.rt.pool.embedder_name()  # type: ignore[attr-defined]
    assert body["space"] == client.app.state.rt.pool.embedding_space()  # type: ignore[attr-defined]


def test_compare_astronaut_with_someone_else_does_not_match(
    client: TestClient, astronaut: bytes, testdata: Path
) -> None:
    other = (testdata / "faces/deepface/images/img1.jpg").read_bytes()
    resp = client.post("/v1/compare", files={"image1": ("a", astronaut), "image2": ("b", other)})
    body = resp.json()
    assert body["match"] is False and body["similarity"] < body["threshold"]


def test_compare_embeddings_equals_compare_images(client: TestClient, astronaut: bytes) -> None:
    det = client.post(
        "/v1/detect", files={"image": ("a", astronaut)}, data={"return_embedding": "true"}
    ).json()
    emb = det["faces"][0]["embedding"]
    body = client.post("/v1/compare", json={"embedding1": emb, "embedding2": emb}).json()
    assert body["similarity"] == pytest.approx(1.0, abs=1e-5) and body["match"] is True
    assert body["face1"] is None


def test_compare_self_with_image_and_embedding(client: TestClient, astronaut: bytes) -> None:
    det = client.post(
        "/v1/detect", files={"image": ("a", astronaut)}, data={"return_embedding": "true"}
    ).json()
    emb = det["faces"][0]["embedding"]
    import base64

    body = client.post(
        "/v1/compare",
        json={"image1": {"base64": base64.b64encode(astronaut).decode()}, "embedding2": emb},
    ).json()
    assert body["similarity"] == pytest.approx(1.0, abs=1e-4)


def test_no_face_is_face_not_found(client: TestClient, astronaut: bytes) -> None:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (200, 200), (120, 130, 140)).save(buf, format="PNG")
    resp = client.post(
        "/v1/compare", files={"image1": ("a", astronaut), "image2": ("b", buf.getvalue())}
    )
    assert resp.status_code == 422
    err = resp.json()["error"]
    assert err["code"] == "FACE_NOT_FOUND" and err["details"]["field"] == "image2"


def test_face_index_out_of_range(client: TestClient, astronaut: bytes) -> None:
    resp = client.post(
        "/v1/compare",
        files={"image1": ("a", astronaut), "image2": ("b", astronaut)},
        data={"face_index2": "3"},
    )
    assert resp.json()["error"]["code"] == "FACE_INDEX_OUT_OF_RANGE"


def test_bad_embedding_is_embedding_invalid(client: TestClient) -> None:
    resp = client.post("/v1/compare", json={"embedding1": [0.1] * 5, "embedding2": [0.1] * 128})
    assert resp.json()["error"]["code"] == "EMBEDDING_INVALID"


def test_missing_second_image_is_missing_argument(client: TestClient, astronaut: bytes) -> None:
    resp = client.post("/v1/compare", files={"image1": ("a", astronaut)})
    err = resp.json()["error"]
    assert err["code"] == "MISSING_ARGUMENT" and err["details"]["field"] == "image2"
