"""The data folder of a real server is private to its owner: every file 0600, every folder 0700,
whatever the umask it was started under (issue 11, item 15)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import os
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from live import Server

PORTRAIT = "faces/deepface/images/img1.jpg"


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """Umask 0 for the server started in the test: nothing may rely on the umask."""
    old = os.umask(0)
    yield
    os.umask(old)


def modes(root: Path) -> dict[str, str]:
    """Every path under root (and root) with its permission bits, as octal text."""
    found = {".": oct(stat.S_IMODE(root.stat().st_mode))}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = oct(stat.S_IMODE(path.lstat().st_mode))
    return found


def container(token: str, photo: bytes) -> bytes:
    raw = json.dumps(
        {"session_token": token, "media:sha256": {"a.jpg": hashlib.sha256(photo).hexdigest()}}
    ).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("payload.json", raw)
        zf.writestr("signature", hmac.new(token.encode(), raw, "sha256").hexdigest())
        zf.writestr("a.jpg", photo)
    return buf.getvalue()


def test_every_file_the_server_writes_is_0600_and_every_folder_0700(
    tmp_path: Path, testdata: Path, loose_umask: None
) -> None:
    data_dir = tmp_path / "data"
    server = Server(
        data_dir, FACEPLANE_ENROLL_KEEP_CROPS="true", FACEPLANE_QUALITY_MIN_FACE_PX="40"
    )
    photo = (testdata / PORTRAIT).read_bytes()
    server.start()
    try:
        c = httpx.Client(base_url=server.base, headers=server.headers, timeout=60)
        cid = c.post("/v1/collections", json={"name": "modes"}).json()["id"]
        sid = c.post(f"/v1/collections/{cid}/subjects", json={"name": "p"}).json()["id"]
        enrolled = c.post(
            f"/v1/collections/{cid}/subjects/{sid}/faces",
            files={"image": ("f.jpg", photo)},
            data={"keep_crop": "true"},
        )
        assert enrolled.status_code == 201, enrolled.text
        task = c.post(
            "/v1/tasks",
            json={
                "operation": "crop",
                "input": {"image": {"base64": base64.b64encode(photo).decode()}},
            },
        ).json()
        done = c.get(f"/v1/tasks/{task['request_id']}", params={"wait_s": 60}).json()
        assert done["status"] == "succeeded", done
        token = c.get("/compat/oz/api/authorize/session_token/").json()["session_token"]
        folder = c.post(
            "/compat/oz/api/folders/",
            headers={"Content-Type": "application/octet-stream"},
            content=container(token, photo),
        )
        assert folder.status_code == 201, folder.text
        searched = c.post(f"/v1/collections/{cid}/search", files={"image": ("q.jpg", photo)})
        assert searched.status_code == 200, searched.text
    finally:
        server.stop()  # a clean stop saves the collection indexes
    found = modes(data_dir)
    names = "\n".join(found)
    # What the walk must have covered: database, WAL, secret, crop, task blobs, Oz media, index.
    for part in ("faceplane.db", "secret.key", "collections/", "tasks/", "sessions/", "index/"):
        assert part in names, names
    dirs = {p: m for p, m in found.items() if (data_dir / p).is_dir()}
    files = {p: m for p, m in found.items() if p not in dirs}
    assert {m for m in dirs.values()} == {"0o700"}, dirs
    assert {m for m in files.values()} == {"0o600"}, files
