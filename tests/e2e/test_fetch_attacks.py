"""Slow image URLs against a real server: they hold neither inference nor other tenants.

The attack (issue 11, item 1): detects whose image URL trickles its headers one byte at a time
used to hold an inference thread each until the peer gave up; two stalled every synchronous
detect. A `faceplane serve` subprocess and a trickling peer on 127.0.0.1 replay it.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from live import Server
from support import cli_app_key

DEADLINE_S = 5.0
HOLD_S = 25.0  # how long the trickling peer would go on if nothing cut it


class TricklingPeer:
    """Answers every connection with a status line, then one header byte every 0.2 s."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/slow.jpg"
        self.connections = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        try:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            end = time.monotonic() + HOLD_S
            while time.monotonic() < end:
                conn.sendall(b"a")
                time.sleep(0.2)
        except OSError:
            pass  # the server hung up: what the deadline is for
        finally:
            conn.close()

    def wait_for(self, n: int, seconds: float) -> bool:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            with self._lock:
                if self.connections >= n:
                    return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def photo(testdata: Path) -> bytes:
    return (testdata / "faces/insightface/t1.jpg").read_bytes()


@pytest.fixture(scope="module")
def photo_url(photo: bytes) -> Iterator[str]:
    """A well-behaved image server."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(photo)))
            self.end_headers()
            self.wfile.write(photo)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/photo.jpg"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, photo: bytes) -> Iterator[tuple[Server, str]]:
    """The server, and the key of a second company (made before it starts)."""
    srv = Server(
        tmp_path_factory.mktemp("fetch") / "data",
        FACEPLANE_FETCH_ALLOW_PRIVATE="true",
        FACEPLANE_FETCH_TOTAL_TIMEOUT_S=str(DEADLINE_S),
        FACEPLANE_INFERENCE_THREADS="2",  # as many as the slow requests below
        FACEPLANE_FETCH_MAX_CONCURRENT_PER_COMPANY="2",
        FACEPLANE_FETCH_SLOT_WAIT_S="0.5",
    )
    other_key = cli_app_key(srv.env, "other-company", 100_000)
    srv.start()
    detect_upload(srv, srv.headers, photo)  # models loaded before anything is timed
    yield srv, other_key
    srv.stop()


@pytest.fixture(scope="module")
def server(live: tuple[Server, str]) -> Server:
    return live[0]


@pytest.fixture
def peer() -> Iterator[TricklingPeer]:
    p = TricklingPeer()
    yield p
    p.close()


def detect_upload(server: Server, headers: dict[str, str], photo: bytes) -> httpx.Response:
    return httpx.post(
        server.base + "/v1/detect",
        files={"image": ("t1.jpg", photo, "image/jpeg")},
        headers=headers,
        timeout=15,  # shorter than HOLD_S: before the fix this wait is the failure
    )


class SlowDetects:
    """`n` detects by URL sent at once, each in its own thread: (seconds, status, body)."""

    def __init__(self, server: Server, headers: dict[str, str], url: str, n: int) -> None:
        self.results: list[tuple[float, int, dict[str, Any]]] = []
        self.threads = [
            threading.Thread(target=self._one, args=(server, headers, url)) for _ in range(n)
        ]
        for t in self.threads:
            t.start()

    def _one(self, server: Server, headers: dict[str, str], url: str) -> None:
        started = time.monotonic()
        resp = httpx.post(
            server.base + "/v1/detect",
            json={"image": {"url": url}},
            headers=headers,
            timeout=HOLD_S + 10,
        )
        self.results.append((time.monotonic() - started, resp.status_code, resp.json()))

    def hanging(self) -> int:
        return sum(t.is_alive() for t in self.threads)

    def join(self) -> list[tuple[float, int, dict[str, Any]]]:
        for t in self.threads:
            t.join(HOLD_S + 15)
        return self.results


def test_a_normal_detect_answers_while_two_slow_url_detects_hang(
    server: Server, peer: TricklingPeer, photo: bytes
) -> None:
    slow = SlowDetects(server, server.headers, peer.url, 2)
    assert peer.wait_for(2, 10), "the slow detects never reached the trickling peer"
    resp = detect_upload(server, server.headers, photo)
    assert resp.status_code == 200 and len(resp.json()["faces"]) >= 1
    # Answered while both slow downloads still hang: they held no inference thread.
    assert slow.hanging() == 2
    for took, status, body in slow.join():
        assert (status, body["error"]["code"]) == (400, "DOWNLOAD_TIMEOUT")
        assert DEADLINE_S - 0.5 <= took < DEADLINE_S + 4  # about the deadline, not HOLD_S


def test_a_tenant_past_its_download_cap_is_refused_and_another_tenant_is_not(
    live: tuple[Server, str], peer: TricklingPeer, photo_url: str
) -> None:
    server, other_key = live
    slow = SlowDetects(server, server.headers, peer.url, 2)
    assert peer.wait_for(2, 10)
    third = httpx.post(
        server.base + "/v1/detect",
        json={"image": {"url": photo_url}},
        headers=server.headers,
        timeout=15,
    )
    assert third.status_code == 429
    assert third.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert third.headers["Retry-After"] == "1"
    other = {"X-API-Key": other_key}
    resp = httpx.post(
        server.base + "/v1/detect", json={"image": {"url": photo_url}}, headers=other, timeout=15
    )
    assert resp.status_code == 200 and len(resp.json()["faces"]) >= 1
    assert slow.hanging() == 2
    assert all(body["error"]["code"] == "DOWNLOAD_TIMEOUT" for _, _, body in slow.join())
