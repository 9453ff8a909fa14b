"""An Oz client for the tests of the Oz compatible routes (tests/compat/test_oz_*.py): an app,
users and their tokens, folders, analyses and data containers, and the Oz error check."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from faceplane.services import accounts
from faceplane.settings import Settings
from support import authed_client

OZ = "/compat/oz/api"
PASSWORD = "correct horse battery staple"
IMAGES = "faces/deepface/images"
HEX = re.compile(r"^[0-9a-f]{32}$")
ERROR_KEYS = {"error_code", "error_message", "details"}
COMMON_KEYS = {"time_created", "time_updated", "technical_meta_data"}
FOLDER_KEYS = COMMON_KEYS | {"folder_id", "company_id", "meta_data", "resolution_status"}
FOLDER_KEYS |= {"media", "analyses"}
MEDIA_KEYS = COMMON_KEYS | {"media_id", "folder_id", "media_type", "original_name"}
MEDIA_KEYS |= {"original_url", "tags", "meta_data"}
ANALYSIS_KEYS = COMMON_KEYS | {"analyse_id", "analysis_id", "folder_id", "type", "state"}
ANALYSIS_KEYS |= {"resolution_status", "results_data", "results_media", "source_media"}


@contextmanager
def oz_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A real app with one worker on a fresh data folder, sending an API key by default."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("oz") / "data", workers=1, access_token_ttl_s=3600
    )
    with authed_client(settings) as c:
        yield c


def store_of(client: TestClient) -> Any:
    """The app's store (database and blobs)."""
    return client.app.state.rt.store  # type: ignore[attr-defined]


def new_user(client: TestClient, email: str, role: str = "client", company: str = "default") -> str:
    """A user of `company` (made if needed); returns the email."""
    rt = client.app.state.rt  # type: ignore[attr-defined]
    found = accounts.find_company(rt, company)
    cid = found["id"] if found else accounts.create_company(rt, company)["id"]
    accounts.create_user(rt, cid, email, PASSWORD, role)
    return email


def login(client: TestClient, email: str) -> dict[str, Any]:
    """Oz's login answer for a user made by `new_user`."""
    resp = client.post(
        f"{OZ}/authorize/auth", json={"credentials": {"email": email, "password": PASSWORD}}
    )
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def as_token(token: str) -> dict[str, str]:
    """Headers that send an Oz access token as the only credential."""
    return {"X-Forensic-Access-Token": token, "X-API-Key": ""}


def oz_user(client: TestClient, email: str, company: str = "default") -> dict[str, str]:
    """The headers of a new client user of `company`, logged in through Oz's route."""
    return as_token(login(client, new_user(client, email, company=company))["access_token"])


def oz_error(resp: Any, status: int, code: int) -> dict[str, Any]:
    """Assert an Oz error body with this HTTP status and `error_code`; return the body."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == ERROR_KEYS and body["error_code"] == code, body
    assert isinstance(body["error_message"], str) and body["error_message"]
    assert body["details"] is None or isinstance(body["details"], dict)
    return dict(body)


def photo(testdata: Path, name: str) -> bytes:
    """A deepface test photo (img1, img2: one person; img18, img19: another)."""
    return (testdata / IMAGES / name).read_bytes()


def blank_png() -> bytes:
    """A white square: a readable photo with no face."""
    buf = io.BytesIO()
    Image.new("RGB", (96, 96), "white").save(buf, format="PNG")
    return buf.getvalue()


def new_folder(
    client: TestClient, oz: dict[str, str], media: dict[str, bytes], tags: dict[str, list[str]]
) -> dict[str, Any]:
    """A folder of `media` {field: bytes} with `media:tags`, created by multipart upload."""
    files = {key: (f"{key}.jpg", data, "image/jpeg") for key, data in media.items()}
    payload = json.dumps({"media:tags": tags, "folder:meta_data": {"case": "t-1"}})
    resp = client.post(f"{OZ}/folders/", headers=oz, files=files, data={"payload": payload})
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def analyse(client: TestClient, oz: dict[str, str], fid: str, *items: dict[str, Any]) -> Any:
    """POST the analyses `items` on folder `fid`; the raw response."""
    return client.post(f"{OZ}/folders/{fid}/analyses/", headers=oz, json={"analyses": list(items)})


def finished(client: TestClient, oz: dict[str, str], aid: str) -> dict[str, Any]:
    """Wait on the analysis's task (its id is the task's request_id), then read it as Oz."""
    for _ in range(5):
        task = client.get(f"/v1/tasks/{aid}", params={"wait_s": 60}).json()
        if task["status"] in ("succeeded", "failed", "canceled"):
            break
    resp = client.get(f"{OZ}/analyses/{aid}/", headers=oz)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def container(
    token: str,
    media: dict[str, bytes],
    tags: dict[str, list[str]] | None = None,
    signature: str | None = None,
    hashes: dict[str, str] | None = None,
    with_payload: bool = True,
) -> bytes:
    """A data container: payload.json, its HMAC-SHA256 `signature` keyed by the session token."""
    digests = {n: hashlib.sha256(d).hexdigest() for n, d in media.items()}
    payload = {"session_token": token, "media:tags": tags or {}, "media:sha256": hashes or digests}
    raw = json.dumps(payload).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        if with_payload:
            zf.writestr("payload.json", raw)
            zf.writestr(
                "signature", signature or hmac.new(token.encode(), raw, "sha256").hexdigest()
            )
        for name, data in media.items():
            zf.writestr(name, data)
    return buf.getvalue()


def post_container(
    client: TestClient, oz: dict[str, str], data: bytes, path: str = "/folders/"
) -> Any:
    """POST a data container as the raw octet-stream body."""
    headers = {**oz, "Content-Type": "application/octet-stream"}
    return client.post(OZ + path, headers=headers, content=data)
