"""URL intake against real local peers: SSRF refusal, size cap, redirects, and the wall-clock
deadline against peers that trickle headers, trickle the body, stall, or trickle a TLS record."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from faceplane.engine.fetch import FetchPolicy, FetchSlots, check_url, fetch_url
from faceplane.errors import Err, FaceplaneError

PAYLOAD = b"\x89PNG" + b"x" * 5000


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/ok":
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD)
        elif self.path == "/chunked-big":
            self.send_response(200)
            self.end_headers()  # no Content-Length: the cap must hold while streaming
            for _ in range(100):
                self.wfile.write(b"y" * 1000)
        elif self.path.startswith("/redirect/"):
            n = int(self.path.rsplit("/", 1)[1])
            self.send_response(302)
            self.send_header("Location", "/ok" if n == 0 else f"/redirect/{n - 1}")
            self.end_headers()
        elif self.path == "/to-metadata":
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data")
            self.end_headers()
        elif self.path == "/slow":
            time.sleep(2)
            self.send_response(200)
            self.end_headers()
        else:
            self.send_response(404)
            self.end_headers()


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


LOCAL = FetchPolicy(allow_private=True, max_bytes=10_000, read_timeout_s=0.5, max_redirects=3)


def code(url: str, policy: FetchPolicy) -> Err:
    with pytest.raises(FaceplaneError) as info:
        fetch_url(url, policy)
    return info.value.err


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x.jpg",
        "http://localhost/x.jpg",
        "http://10.0.0.1/x.jpg",
        "http://169.254.169.254/latest",
        "http://[::1]/x.jpg",
        "http://192.168.1.1/a",
        "http://[::ffff:127.0.0.1]/x",
        "http://0.0.0.0/x",
    ],
)
def test_private_and_loopback_addresses_are_forbidden(url: str) -> None:
    with pytest.raises(FaceplaneError) as info:
        check_url(url, FetchPolicy())
    assert info.value.err is Err.URL_FORBIDDEN


@pytest.mark.parametrize("url", ["ftp://example.com/a.jpg", "file:///etc/passwd", "http://", "x"])
def test_non_http_urls_are_invalid(url: str) -> None:
    with pytest.raises(FaceplaneError) as info:
        check_url(url, FetchPolicy())
    assert info.value.err is Err.URL_INVALID


def test_download_succeeds_when_private_addresses_are_allowed(server: str) -> None:
    assert fetch_url(server + "/ok", LOCAL) == PAYLOAD


def test_size_cap_holds_while_streaming(server: str) -> None:
    assert code(server + "/chunked-big", LOCAL) is Err.IMAGE_FILE_TOO_LARGE


def test_declared_length_over_cap_is_refused(server: str) -> None:
    small = FetchPolicy(allow_private=True, max_bytes=100)
    assert code(server + "/ok", small) is Err.IMAGE_FILE_TOO_LARGE


def test_redirects_are_followed_up_to_the_limit(server: str) -> None:
    assert fetch_url(server + "/redirect/2", LOCAL) == PAYLOAD
    assert code(server + "/redirect/9", LOCAL) is Err.DOWNLOAD_FAILED


def test_slow_server_is_download_timeout(server: str) -> None:
    assert code(server + "/slow", LOCAL) is Err.DOWNLOAD_TIMEOUT


def test_http_error_status_is_download_failed(server: str) -> None:
    assert code(server + "/missing", LOCAL) is Err.DOWNLOAD_FAILED


# ---- the wall-clock deadline ---------------------------------------------------------------

# Read timeouts far longer than the deadline: only the deadline can end these downloads.
DEADLINE = FetchPolicy(allow_private=True, total_timeout_s=1.0, read_timeout_s=30.0)
HOLD_S = 12.0  # how long a hostile peer keeps going if nothing stops the client


class Peer:
    """A raw TCP peer on 127.0.0.1 that runs `behave` on each connection, in its own thread."""

    def __init__(self, behave: Callable[[socket.socket], None]) -> None:
        self.behave = behave
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.closed_by_client = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self.behave(conn)
        except OSError:
            self.closed_by_client.set()  # the client hung up while the peer was still going
        finally:
            conn.close()

    def close(self) -> None:
        self.sock.close()


def drip(conn: socket.socket, byte: bytes = b"a", every_s: float = 0.1) -> None:
    """Send one byte every `every_s` for HOLD_S: never idle long enough for a read timeout."""
    end = time.monotonic() + HOLD_S
    while time.monotonic() < end:
        conn.sendall(byte)
        time.sleep(every_s)


def trickle_headers(conn: socket.socket) -> None:
    conn.recv(65536)
    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    drip(conn)


def trickle_body(conn: socket.socket) -> None:
    conn.recv(65536)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n")
    drip(conn)


def stall_after_connect(conn: socket.socket) -> None:
    conn.recv(65536)
    time.sleep(HOLD_S)


def trickle_tls_record(conn: socket.socket) -> None:
    # A TLS record header announcing 16 KB, then its bytes one by one: OpenSSL waits for the
    # whole record inside a single read, so no per-read timeout ever fires.
    conn.recv(65536)  # the ClientHello
    conn.sendall(b"\x16\x03\x03\x40\x00")
    drip(conn)


@pytest.mark.parametrize(
    ("behave", "scheme"),
    [
        (trickle_headers, "http"),
        (trickle_body, "http"),
        (stall_after_connect, "http"),
        (trickle_tls_record, "https"),
    ],
    ids=["trickled-headers", "trickled-body", "stall-after-connect", "trickled-tls-record"],
)
def test_a_hostile_peer_cannot_hold_a_download_past_its_deadline(
    behave: Callable[[socket.socket], None], scheme: str
) -> None:
    peer = Peer(behave)
    try:
        started = time.monotonic()
        with pytest.raises(FaceplaneError) as info:
            fetch_url(f"{scheme}://127.0.0.1:{peer.port}/x.jpg", DEADLINE)
        took = time.monotonic() - started
        assert info.value.err is Err.DOWNLOAD_TIMEOUT
        assert 0.9 <= took < DEADLINE.total_timeout_s + 2.0  # the deadline, not HOLD_S
        # The connection is gone too: the peer's next send fails instead of going on for HOLD_S.
        assert peer.closed_by_client.wait(3.0) or behave is stall_after_connect
    finally:
        peer.close()


def test_a_slow_dns_answer_is_cut_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo

    def slow(host: str, *args: object, **kwargs: object) -> object:
        if host == "slow-dns.test":
            time.sleep(4)  # a resolver that answers late
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", slow)
    policy = FetchPolicy(allow_private=True, total_timeout_s=1.0, connect_timeout_s=30.0)
    started = time.monotonic()
    with pytest.raises(FaceplaneError) as info:
        fetch_url("http://slow-dns.test/x.jpg", policy)
    assert info.value.err is Err.DOWNLOAD_TIMEOUT
    assert time.monotonic() - started < 3.0


def test_a_fast_download_is_not_touched_by_the_deadline_watchdog(server: str) -> None:
    policy = FetchPolicy(allow_private=True, total_timeout_s=0.5)
    for _ in range(3):
        assert fetch_url(server + "/ok", policy) == PAYLOAD
    time.sleep(0.7)  # past the deadline of each: nothing left behind fires on anything


# ---- download slots ------------------------------------------------------------------------


def test_a_company_past_its_download_slots_is_rate_limited_and_others_are_not() -> None:
    slots = FetchSlots(per_company=2, total=3)
    assert slots.try_take("a") is None and slots.try_take("a") is None
    assert slots.try_take("a") is Err.RATE_LIMIT_EXCEEDED
    assert slots.try_take("b") is None
    assert slots.try_take("c") is Err.SERVER_BUSY  # all three slots of the server are taken
    slots.give_back("a")
    assert slots.in_flight("a") == 1 and slots.in_flight() == 2
    assert slots.try_take("c") is None
