"""Oz container zip bombs against a real server: refused from the central directory, before
anything is inflated, so concurrent bombs leave its memory where it was (issue 11, item 4)."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import struct
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from live import Server

OZ = "/compat/oz/api"
MB = 1024 * 1024


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path / "data")
    srv.start()
    yield srv
    srv.stop()


def rss_mb(server: Server) -> float:
    """VmRSS of the server process and its worker processes, in MB."""
    assert server.proc
    total = 0
    for pid in [server.proc.pid, *server.children()]:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        total += sum(int(line.split()[1]) for line in status.splitlines() if line[:6] == "VmRSS:")
    return total / 1024


def container(token: str, media: dict[str, bytes]) -> bytes:
    """A data container signed with the session token, as an Oz client makes it."""
    digests = {n: hashlib.sha256(d).hexdigest() for n, d in media.items()}
    raw = json.dumps({"session_token": token, "media:sha256": digests}).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("payload.json", raw)
        zf.writestr("signature", hmac.new(token.encode(), raw, "sha256").hexdigest())
        for name, data in media.items():
            zf.writestr(name, data)
    return buf.getvalue()


def understated(data: bytes) -> bytes:
    """The same zip with a central directory that says each medium inflates only 20 times."""
    out, pos = bytearray(data), data.find(b"PK\x01\x02")
    while pos >= 0:
        packed, size = struct.unpack_from("<LL", out, pos + 20)
        if size > MB:
            struct.pack_into("<L", out, pos + 24, packed * 20)
        pos = data.find(b"PK\x01\x02", pos + 1)
    return bytes(out)


def post(server: Server, data: bytes) -> httpx.Response:
    headers = {**server.headers, "Content-Type": "application/octet-stream"}
    return httpx.post(server.base + OZ + "/folders/", headers=headers, content=data, timeout=120)


def test_concurrent_zip_bombs_are_refused_without_growing_the_server(
    server: Server, testdata: Path
) -> None:
    url = server.base + OZ + "/authorize/session_token/"
    token = httpx.get(url, headers=server.headers, timeout=10).json()["session_token"]
    # 0.29 MB that inflates to 280 MB: 19 "photos" just under the 15 MB image limit.
    bomb = container(token, {f"m{i}.jpg": bytes(int(14.7 * MB)) for i in range(19)})
    assert len(bomb) < 0.3 * MB
    lying = understated(bomb)
    before = peak = rss_mb(server)
    answers: list[httpx.Response] = []
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.02):
            peak = max(peak, rss_mb(server))

    def send(data: bytes) -> None:
        answers.append(post(server, data))

    sampler = threading.Thread(target=sample)
    senders = [threading.Thread(target=send, args=(d,)) for d in (bomb, bomb, bomb, lying)]
    sampler.start()
    for t in senders:
        t.start()
    for t in senders:
        t.join(60)
    done.set()
    sampler.join()
    # Before the fix the three bombs took the server from ~210 MB to ~1,080 MB.
    assert peak - before < 100, (before, peak)
    codes = sorted((r.status_code, r.json()["error_code"]) for r in answers)
    # The honest bombs fail the ratio (413, Oz 14); the lying one stops at its declared size
    # and is a damaged container (Oz 5).
    assert codes == [(400, 5), (413, 14), (413, 14), (413, 14)], [r.text for r in answers]
    photo = (testdata / "faces/deepface/images/img1.jpg").read_bytes()
    normal = post(server, container(token, {"selfie.jpg": photo}))
    assert normal.status_code == 201, normal.text
    assert [m["original_name"] for m in normal.json()["media"]] == ["selfie.jpg"]
