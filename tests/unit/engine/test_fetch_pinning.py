"""Pinned connections: the socket goes to the address that was checked (DNS rebinding), on
every redirect hop, with the Host header, TLS server name and certificate of the URL's host.

The attacker's DNS is simulated by replacing socket.getaddrinfo with one whose answer changes
between calls; the peers are real servers on 127.0.0.1 and 127.0.0.2. In these tests
127.0.0.1 plays a public host (the address rules are those of engine.addresses except that
127.0.0.1 counts as public) and 127.0.0.2 plays the internal host the attacker is after.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpcore
import pytest

from faceplane.engine import addresses, fetch
from faceplane.engine.fetch import Deadline, FetchPolicy, fetch_url, pinned_client
from faceplane.errors import Err, FaceplaneError

PUBLIC, INTERNAL = "127.0.0.1", "127.0.0.2"
POLICY = FetchPolicy(total_timeout_s=5.0)


class Site(BaseHTTPRequestHandler):
    """Answers with its own name, or redirects where /to?<url> says; counts its requests."""

    name = ""
    hits: ClassVar[list[tuple[str, str]]] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        type(self).hits.append((self.path, self.headers.get("Host", "")))
        if self.path.startswith("/to?"):
            self.send_response(302)
            self.send_header("Location", self.path[4:])
            self.end_headers()
            return
        body = type(self).name.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET


def start(address: str, port: int, name: str) -> tuple[ThreadingHTTPServer, type[Site]]:
    handler = type(name, (Site,), {"name": name, "hits": []})
    httpd = ThreadingHTTPServer((address, port), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, handler


@pytest.fixture
def sites() -> Iterator[tuple[int, type[Site], type[Site]]]:
    """One port on the 'public' and the 'internal' address: (port, public, internal)."""
    public, pub = start(PUBLIC, 0, "public")
    port = public.server_address[1]
    internal, intl = start(INTERNAL, port, "internal")
    yield port, pub, intl
    for httpd in (public, internal):
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def rules(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real address rules, except that 127.0.0.1 stands for a public host."""
    real = addresses.address_refused

    def refused(ip: addresses.IPAddress) -> bool:
        return ip != ipaddress.ip_address(PUBLIC) and real(ip)

    monkeypatch.setattr(fetch, "address_refused", refused)


class RebindingDns:
    """An attacker's resolver: each name answers from its list, one answer per call."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.calls: list[str] = []
        self._real = socket.getaddrinfo
        monkeypatch.setattr(socket, "getaddrinfo", self)

    def __call__(self, host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in self.answers:  # address literals and everything else resolve normally
            return self._real(host, port, *args, **kwargs)
        self.calls.append(host)
        given = self.answers[host]
        address = given.pop(0) if len(given) > 1 else given[0]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]


def test_the_connection_goes_to_the_checked_address_when_dns_rebinds(
    sites: tuple[int, type[Site], type[Site]], rules: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    port, public, internal = sites
    dns = RebindingDns(monkeypatch, {"rebind.test": [PUBLIC, INTERNAL]})
    assert fetch_url(f"http://rebind.test:{port}/img.jpg", POLICY) == b"public"
    assert internal.hits == []
    assert dns.calls == ["rebind.test"]  # resolved once: the answer checked is the one used
    assert public.hits == [("/img.jpg", f"rebind.test:{port}")]  # Host: the URL's host


def test_a_name_that_resolves_to_a_refused_address_first_is_never_connected(
    sites: tuple[int, type[Site], type[Site]], rules: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    port, public, internal = sites
    RebindingDns(monkeypatch, {"rebind.test": [INTERNAL, PUBLIC]})
    with pytest.raises(FaceplaneError) as info:
        fetch_url(f"http://rebind.test:{port}/img.jpg", POLICY)
    assert info.value.err is Err.URL_FORBIDDEN
    assert internal.hits == [] and public.hits == []


@pytest.mark.parametrize(
    "target",
    [
        "http://inside.test:{port}/secret",  # a name that resolves to the internal address
        "http://127.0.0.2:{port}/secret",
        "http://[::127.0.0.2]:{port}/secret",  # IPv4-compatible form
        "http://[::ffff:127.0.0.2]:{port}/secret",
        "http://169.254.169.254/latest/meta-data",
        "ftp://127.0.0.1/secret",
    ],
)
def test_a_redirect_to_a_refused_address_is_refused(
    sites: tuple[int, type[Site], type[Site]],
    rules: None,
    monkeypatch: pytest.MonkeyPatch,
    target: str,
) -> None:
    port, public, internal = sites
    RebindingDns(monkeypatch, {"inside.test": [INTERNAL]})
    with pytest.raises(FaceplaneError) as info:
        fetch_url(f"http://127.0.0.1:{port}/to?{target.format(port=port)}", POLICY)
    assert info.value.err in (Err.URL_FORBIDDEN, Err.URL_INVALID)
    assert len(public.hits) == 1 and internal.hits == []


def test_a_redirect_hop_is_pinned_like_the_first_request(
    sites: tuple[int, type[Site], type[Site]], rules: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    port, _, internal = sites
    dns = RebindingDns(monkeypatch, {"hop.test": [PUBLIC, INTERNAL]})
    url = f"http://127.0.0.1:{port}/to?http://hop.test:{port}/img.jpg"
    assert fetch_url(url, POLICY) == b"public"
    assert internal.hits == [] and dns.calls == ["hop.test"]


def test_the_pinned_client_checks_every_hop_of_a_request_it_sends(
    sites: tuple[int, type[Site], type[Site]], rules: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The webhook sender's use: a POST through pinned_client, redirects followed by httpx.
    port, _, internal = sites
    RebindingDns(monkeypatch, {"hook.test": [PUBLIC, INTERNAL], "inside.test": [INTERNAL]})
    with Deadline(5.0) as deadline, pinned_client(POLICY, deadline) as client:
        resp = client.post(f"http://hook.test:{port}/hook", content=b"{}")
        assert resp.status_code == 200 and resp.content == b"public"
        redirected = f"http://hook.test:{port}/to?http://inside.test:{port}/x"
        with pytest.raises(FaceplaneError) as info:
            client.post(redirected, content=b"{}", follow_redirects=True)
    assert info.value.err is Err.URL_FORBIDDEN
    assert internal.hits == []


# ---- TLS: the server name and the certificate are the URL's host ---------------------------


def make_ca_and_leaf(tmp: Path, name: str) -> tuple[Path, Path, Path]:
    """A private CA and a certificate for `name` signed by it: (ca.pem, leaf.pem, leaf.key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "faceplane test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = (tmp / "ca.pem", tmp / "leaf.pem", tmp / "leaf.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def tls_site(tmp: Path, cert_name: str) -> tuple[ThreadingHTTPServer, FetchPolicy, list[str]]:
    """An HTTPS site on 127.0.0.1 with a certificate for `cert_name`; the names clients sent."""
    ca, leaf, key = make_ca_and_leaf(tmp, cert_name)
    httpd, _ = start(PUBLIC, 0, "tls")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(leaf, key)
    sni: list[str] = []

    def seen(_sock: object, name: str | None, _ctx: object) -> None:
        sni.append(name or "")

    server_ctx.sni_callback = seen
    httpd.socket = server_ctx.wrap_socket(httpd.socket, server_side=True)
    client_ctx = ssl.create_default_context(cafile=str(ca))
    return httpd, FetchPolicy(total_timeout_s=5.0, ssl_context=client_ctx), sni


def test_tls_uses_the_url_host_for_the_server_name_and_the_certificate(
    tmp_path: Path, rules: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    httpd, policy, sni = tls_site(tmp_path, "images.test")
    try:
        RebindingDns(monkeypatch, {"images.test": [PUBLIC, INTERNAL]})
        url = f"https://images.test:{httpd.server_address[1]}/photo.jpg"
        assert fetch_url(url, policy) == b"tls"
        assert sni == ["images.test"]
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_certificate_for_another_name_is_refused_on_the_pinned_address(
    tmp_path: Path, rules: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    httpd, policy, _ = tls_site(tmp_path, "other.test")
    try:
        RebindingDns(monkeypatch, {"images.test": [PUBLIC]})
        with pytest.raises(FaceplaneError) as info:
            fetch_url(f"https://images.test:{httpd.server_address[1]}/photo.jpg", policy)
        assert info.value.err is Err.DOWNLOAD_FAILED
        assert "certificate" in info.value.message.lower()
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_request_never_checked_is_never_connected() -> None:
    # The backend connects only where the transport pinned: a bare pool request has no pin.
    backend = fetch._PinnedBackend(Deadline(1.0))
    with pytest.raises(httpcore.ConnectError) as info:
        backend.connect_tcp("127.0.0.1", 9)
    assert "not checked" in str(info.value)
