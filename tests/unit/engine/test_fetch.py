"""URL intake against a real local HTTP server: SSRF refusal, size cap, redirects, timeouts."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from faceplane.engine.fetch import FetchPolicy, check_url, fetch_url
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


def test_each_redirect_hop_is_checked_again(server: str) -> None:
    # The first hop is allowed (loopback permitted for the test server) but only by address:
    # a policy that refuses private space refuses the redirect to the metadata address too.
    with pytest.raises(FaceplaneError) as info:
        fetch_url(server + "/to-metadata", FetchPolicy(allow_private=False))
    assert info.value.err is Err.URL_FORBIDDEN


def test_slow_server_is_download_timeout(server: str) -> None:
    assert code(server + "/slow", LOCAL) is Err.DOWNLOAD_TIMEOUT


def test_http_error_status_is_download_failed(server: str) -> None:
    assert code(server + "/missing", LOCAL) is Err.DOWNLOAD_FAILED
