"""Outbound HTTP on a caller's behalf: image URLs (and webhooks) under a wall-clock deadline,
a size cap and SSRF rules.

Three promises hold for every request made through `pinned_client` (and so `fetch_url`):
- the host is resolved once, every address it resolves to is checked (engine.addresses), and
  the socket connects to a checked address only: a DNS answer that changes between the check
  and the connection (rebinding) changes nothing. The Host header, the TLS server name and the
  certificate check still use the host name of the URL. Every redirect hop goes through the
  same check, because the check lives in the transport.
- one wall-clock deadline covers resolution, connect, TLS, headers and body. Each socket wait
  is clamped to what is left of it, and a watchdog shuts the exchange's sockets when it passes,
  so a peer that trickles bytes (even inside one TLS record, which no per-read timeout sees)
  cannot hold the calling thread past it.
- nothing is read from the environment (no proxies, no .netrc).
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from faceplane.engine.addresses import address_refused
from faceplane.errors import Err, FaceplaneError

DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class FetchPolicy:
    """Limits of one download."""

    max_bytes: int = 15 * 1024 * 1024
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 10.0
    total_timeout_s: float = 20.0
    max_redirects: int = 3
    allow_private: bool = False
    # The certificates to trust; None is the system's (httpx/certifi). Tests pass a private CA.
    ssl_context: ssl.SSLContext | None = field(default=None, compare=False, repr=False)


class Deadline:
    """A wall-clock deadline over one exchange; shuts the sockets it watches when it passes."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self._lock = threading.Lock()
        # Duplicates of each connection's socket: shutdown() acts on the connection whichever
        # descriptor names it, and a duplicate stays valid when TLS takes over the original.
        self._watched: list[socket.socket] = []
        self._timer: threading.Timer | None = None
        self._expired = False

    def __enter__(self) -> Deadline:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def remaining(self) -> float:
        """Seconds left (negative once passed)."""
        return self.at - time.monotonic()

    def passed(self) -> bool:
        """True once the deadline has passed."""
        return self._expired or self.remaining() <= 0

    def clamp(self, timeout: float | None, expired: type[Exception]) -> float:
        """`timeout` cut to what is left; raises `expired` when nothing is."""
        left = self.remaining()
        if left <= 0:
            raise expired(f"the {self.seconds:g} s deadline of the exchange passed")
        return left if timeout is None else min(timeout, left)

    def watch(self, sock: socket.socket) -> None:
        """Shut `sock`'s connection down when the deadline passes."""
        dup = sock.dup()
        with self._lock:
            self._watched.append(dup)
            if self._expired:
                _shutdown(dup)
            elif self._timer is None:
                self._timer = threading.Timer(max(0.0, self.remaining()), self._expire)
                self._timer.daemon = True
                self._timer.start()

    def _expire(self) -> None:
        with self._lock:
            self._expired = True
            for dup in self._watched:
                _shutdown(dup)

    def close(self) -> None:
        """Stop the watchdog and release the duplicated sockets."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            for dup in self._watched:
                dup.close()
            self._watched.clear()


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by its owner
        sock.shutdown(socket.SHUT_RDWR)


def _parse(url: str) -> tuple[str, int]:
    """(host, port) of an http(s) URL, or URL_INVALID."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port or DEFAULT_PORTS.get(parts.scheme, 0)
    except ValueError as exc:
        raise FaceplaneError(Err.URL_INVALID, f"The URL is malformed: {exc}.", url=url) from None
    if parts.scheme not in DEFAULT_PORTS:
        raise FaceplaneError(Err.URL_INVALID, "Only http and https URLs are accepted.", url=url)
    if not host:
        raise FaceplaneError(Err.URL_INVALID, "The URL has no host.", url=url)
    return host, port


def resolve(host: str, port: int, timeout_s: float, url: str) -> list[str]:
    """The addresses of `host`, in the resolver's order, within `timeout_s`."""
    try:
        return [str(ipaddress.ip_address(host))]  # a literal: nothing to resolve
    except ValueError:
        pass
    # getaddrinfo has no timeout of its own: it runs on a daemon thread that is abandoned at the
    # deadline (the system resolver ends it after its own retries).
    box: dict[str, Any] = {}
    done = threading.Event()

    def lookup() -> None:
        try:
            box["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            box["error"] = exc
        done.set()

    threading.Thread(target=lookup, name="fp-resolve", daemon=True).start()
    if not done.wait(max(0.0, timeout_s)):
        raise FaceplaneError(
            Err.DOWNLOAD_TIMEOUT, f"Resolving the host {host!r} timed out.", url=url
        )
    if "error" in box:
        problem = box["error"]
        raise FaceplaneError(
            Err.DOWNLOAD_FAILED, f"The host {host!r} could not be resolved: {problem}.", url=url
        )
    return list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in box["infos"]))


def checked_addresses(
    host: str, port: int, policy: FetchPolicy, timeout_s: float, url: str
) -> list[str]:
    """Resolve `host` and check every address; URL_FORBIDDEN if any is refused."""
    addresses = resolve(host, port, timeout_s, url)
    if not policy.allow_private and any(
        address_refused(ipaddress.ip_address(a)) for a in addresses
    ):
        # The URL, never the address: echoing what a name resolved to maps a private network.
        raise FaceplaneError(
            Err.URL_FORBIDDEN,
            "The URL points at a loopback, private, link-local or reserved address.",
            url=url,
        )
    return addresses


def check_url(url: str, policy: FetchPolicy) -> None:
    """Refuse a URL that is not http(s) or whose host resolves to a forbidden address."""
    host, port = _parse(url)
    if not policy.allow_private:
        checked_addresses(host, port, policy, policy.connect_timeout_s, url)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every wait is clamped to the deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: Deadline) -> None:
        self._inner, self._deadline = inner, deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._deadline.clamp(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._deadline.clamp(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        wait = self._deadline.clamp(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(
            self._inner.start_tls(ssl_context, server_hostname, wait), self._deadline
        )

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _PinnedBackend(httpcore.NetworkBackend):
    """Connects to the addresses checked for a host, never to a fresh resolution of it."""

    def __init__(self, deadline: Deadline) -> None:
        self._inner = httpcore.SyncBackend()
        self._deadline = deadline
        self._pins: dict[tuple[str, int], list[str]] = {}

    def pin(self, host: str, port: int, addresses: list[str]) -> None:
        """Record the checked addresses of (host, port)."""
        self._pins[(host, port)] = addresses

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = self._pins.get((host, port))
        if not addresses:
            raise httpcore.ConnectError(f"{host}:{port} was not checked; refusing to connect")
        failure: Exception | None = None
        for address in addresses:
            wait = self._deadline.clamp(timeout, httpcore.ConnectTimeout)
            try:
                stream = self._inner.connect_tcp(
                    address, port, wait, local_address, socket_options or []
                )
            except httpcore.ConnectError as exc:  # refused: try the next checked address
                failure = exc
                continue
            self._deadline.watch(stream.get_extra_info("socket"))
            return _DeadlineStream(stream, self._deadline)
        assert failure is not None
        raise failure

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are never used for outbound requests")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class _PinnedTransport(httpx.HTTPTransport):
    """An httpx transport that checks and pins each request's host, under one deadline."""

    def __init__(self, policy: FetchPolicy, deadline: Deadline) -> None:
        ctx = policy.ssl_context or httpx.create_ssl_context(trust_env=False)
        super().__init__(verify=ctx, trust_env=False)
        self._policy, self._deadline = policy, deadline
        self._backend = _PinnedBackend(deadline)
        # httpx offers no way to hand its pool a network backend: replace the pool it built with
        # one whose sockets go only where `handle_request` pinned them.
        self._pool = httpcore.ConnectionPool(
            ssl_context=ctx, network_backend=self._backend, retries=0
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        _parse(url)
        host = request.url.raw_host.decode("ascii")
        port = request.url.port or DEFAULT_PORTS[request.url.scheme]
        wait = min(self._policy.connect_timeout_s, self._deadline.remaining())
        self._backend.pin(host, port, checked_addresses(host, port, self._policy, wait, url))
        return super().handle_request(request)

    def close(self) -> None:
        super().close()
        self._deadline.close()


def pinned_client(policy: FetchPolicy, deadline: Deadline, **kwargs: Any) -> httpx.Client:
    """An httpx client for caller-named URLs: every request and redirect hop connects only to
    an address that passed the rules of `policy`, and all of them end by `deadline`."""
    timeout = httpx.Timeout(
        policy.read_timeout_s, connect=policy.connect_timeout_s, pool=policy.connect_timeout_s
    )
    kwargs.setdefault("follow_redirects", False)
    return httpx.Client(
        transport=_PinnedTransport(policy, deadline), timeout=timeout, trust_env=False, **kwargs
    )


def fetch_url(url: str, policy: FetchPolicy) -> bytes:
    """Download `url` within `policy.total_timeout_s`, checking every redirect hop; the body."""
    with Deadline(policy.total_timeout_s) as deadline, pinned_client(policy, deadline) as client:
        try:
            return _follow(client, url, policy, deadline)
        except httpx.HTTPError as exc:
            # A connection the watchdog shut reads as a disconnect: the deadline is the cause.
            if deadline.passed() or isinstance(exc, httpx.TimeoutException):
                raise FaceplaneError(
                    Err.DOWNLOAD_TIMEOUT,
                    f"Downloading the image took longer than {policy.total_timeout_s:g} s.",
                    url=url,
                    timeout_s=policy.total_timeout_s,
                ) from None
            raise FaceplaneError(
                Err.DOWNLOAD_FAILED, f"Downloading the image failed: {exc}.", url=url
            ) from None


def _follow(client: httpx.Client, url: str, policy: FetchPolicy, deadline: Deadline) -> bytes:
    current = url
    for _hop in range(policy.max_redirects + 1):
        _parse(current)  # a redirect to ftp: or file: is as invalid as a first URL would be
        with client.stream("GET", current, headers={"Accept": "image/*"}) as resp:
            if resp.is_redirect:
                current = urljoin(current, resp.headers.get("location", ""))
                continue
            if resp.status_code != 200:
                raise FaceplaneError(
                    Err.DOWNLOAD_FAILED,
                    f"The image URL answered HTTP {resp.status_code}.",
                    url=url,
                    http_status=resp.status_code,
                )
            declared = resp.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > policy.max_bytes:
                raise _too_big(url, int(declared), policy)
            chunks: list[bytes] = []
            size = 0
            for chunk in resp.iter_bytes():
                size += len(chunk)
                if size > policy.max_bytes:
                    raise _too_big(url, size, policy)
                if deadline.passed():
                    raise httpx.ReadTimeout("the download deadline passed")
                chunks.append(chunk)
            return b"".join(chunks)
    raise FaceplaneError(
        Err.DOWNLOAD_FAILED,
        f"The image URL redirected more than {policy.max_redirects} times.",
        url=url,
    )


def _too_big(url: str, size: int, policy: FetchPolicy) -> FaceplaneError:
    return FaceplaneError(
        Err.IMAGE_FILE_TOO_LARGE,
        f"The image at the URL exceeds {policy.max_bytes} bytes.",
        url=url,
        size_bytes=size,
        max_bytes=policy.max_bytes,
    )


class FetchSlots:
    """URL downloads in flight, per company and in all, so no tenant fills the I/O pool."""

    def __init__(self, per_company: int, total: int) -> None:
        self.per_company, self.total = per_company, total
        self._lock = threading.Lock()
        self._by_company: dict[str, int] = {}
        self._in_flight = 0

    def try_take(self, company_id: str) -> Err | None:
        """Take a slot (None), or say which cap is full: RATE_LIMIT_EXCEEDED or SERVER_BUSY."""
        with self._lock:
            mine = self._by_company.get(company_id, 0)
            if mine >= self.per_company:
                return Err.RATE_LIMIT_EXCEEDED
            if self._in_flight >= self.total:
                return Err.SERVER_BUSY
            self._by_company[company_id] = mine + 1
            self._in_flight += 1
            return None

    def give_back(self, company_id: str) -> None:
        """Return a slot taken by `try_take`."""
        with self._lock:
            left = self._by_company.get(company_id, 0) - 1
            if left > 0:
                self._by_company[company_id] = left
            else:
                self._by_company.pop(company_id, None)
            self._in_flight -= 1

    def in_flight(self, company_id: str | None = None) -> int:
        """Downloads in flight, of one company or of all."""
        with self._lock:
            return self._in_flight if company_id is None else self._by_company.get(company_id, 0)
