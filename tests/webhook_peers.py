"""Webhook endpoints on 127.0.0.1 for tests: a healthy one and three hostile ones.

`/ok` answers 204. `/huge` answers 200 with a body of `huge_bytes` zeros, written lazily (one
reused 1 MiB buffer, never the whole body in memory). `/trickle-headers` sends its status line
and then one header byte every `step_s`; `/trickle-body` sends its headers at once and then one
body byte every `step_s`. Both trickles go on for `trickle_s` seconds (or until `stop`), so a
per-read timeout never trips. Every request is recorded with its task id and attempt number.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MIB = 1024 * 1024


@dataclass
class Received:
    """One delivery as the endpoint saw it."""

    path: str
    task_id: str
    attempt: str
    at: float
    ended_at: float | None = None  # when the endpoint stopped writing (done or disconnected)
    sent_bytes: int = 0


@dataclass
class Peers:
    """The endpoints' behaviour and what they received."""

    huge_bytes: int = 200 * MIB
    trickle_s: float = 20.0
    step_s: float = 0.5
    received: list[Received] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    base: str = ""

    def url(self, path: str) -> str:
        """The URL of one endpoint (`/ok`, `/huge`, `/trickle-headers`, `/trickle-body`)."""
        return self.base + path

    def to(self, path: str) -> list[Received]:
        """The deliveries one endpoint received."""
        return [r for r in self.received if r.path == path]


def _handler(peers: Peers) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            got = Received(
                self.path,
                self.headers.get("X-Faceplane-Task-Id", ""),
                self.headers.get("X-Faceplane-Delivery-Attempt", ""),
                time.time(),
            )
            peers.received.append(got)
            try:
                if self.path == "/ok":
                    self.send_response(204)
                    self.end_headers()
                elif self.path == "/huge":
                    self._huge(got)
                elif self.path == "/trickle-headers":
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                    self._trickle(got)
                    self.wfile.write(b"\r\nContent-Length: 0\r\n\r\n")
                elif self.path == "/trickle-body":
                    self.send_response(200)
                    self.send_header("Content-Length", str(int(peers.trickle_s / peers.step_s)))
                    self.end_headers()
                    self._trickle(got)
                else:
                    self.send_response(404)
                    self.end_headers()
            except OSError:  # the client hung up: what the hostile endpoints expect
                pass
            finally:
                got.ended_at = time.time()

        def _huge(self, got: Received) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(peers.huge_bytes))
            self.end_headers()
            chunk = bytes(MIB)
            while got.sent_bytes < peers.huge_bytes and not peers.stop.is_set():
                part = chunk[: peers.huge_bytes - got.sent_bytes]
                self.wfile.write(part)
                got.sent_bytes += len(part)

        def _trickle(self, got: Received) -> None:
            self.wfile.flush()
            until = time.monotonic() + peers.trickle_s
            while time.monotonic() < until and not peers.stop.wait(peers.step_s):
                self.wfile.write(b"x")
                self.wfile.flush()
                got.sent_bytes += 1

    return Handler


@contextmanager
def webhook_peers(**options: float) -> Iterator[Peers]:
    """Serve the endpoints on a free loopback port for the length of the block."""
    peers = Peers(**options)  # type: ignore[arg-type]
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(peers))
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    peers.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield peers
    finally:
        peers.stop.set()
        httpd.shutdown()
        httpd.server_close()
