"""URL intake: download an image over http(s) with timeouts, a size cap and SSRF protection."""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

from faceplane.errors import Err, FaceplaneError


@dataclass(frozen=True)
class FetchPolicy:
    """Limits of one download."""

    max_bytes: int = 15 * 1024 * 1024
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 10.0
    total_timeout_s: float = 20.0
    max_redirects: int = 3
    allow_private: bool = False


def _address_refused(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for loopback, private, link-local (cloud metadata), multicast and reserved ranges."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def check_url(url: str, policy: FetchPolicy) -> None:
    """Refuse a URL that is not http(s) or whose host resolves to a forbidden address."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise FaceplaneError(Err.URL_INVALID, f"The URL is malformed: {exc}.", url=url) from None
    if parts.scheme not in ("http", "https"):
        raise FaceplaneError(Err.URL_INVALID, "Only http and https URLs are accepted.", url=url)
    if not host:
        raise FaceplaneError(Err.URL_INVALID, "The URL has no host.", url=url)
    if policy.allow_private:
        return
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise FaceplaneError(
            Err.DOWNLOAD_FAILED, f"The host {host!r} could not be resolved: {exc}.", url=url
        ) from None
    for info in infos:
        ip = ipaddress.ip_address(info[4][0])
        if _address_refused(ip):
            raise FaceplaneError(
                Err.URL_FORBIDDEN,
                "The URL points at a loopback, private, link-local or reserved address.",
                url=url,
                address=str(ip),
            )


def fetch_url(url: str, policy: FetchPolicy) -> bytes:
    """Download `url`, checking every redirect hop again; return the body bytes."""
    deadline = time.monotonic() + policy.total_timeout_s
    timeout = httpx.Timeout(
        policy.read_timeout_s, connect=policy.connect_timeout_s, pool=policy.connect_timeout_s
    )
    current = url
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        for _hop in range(policy.max_redirects + 1):
            check_url(current, policy)
            try:
                with client.stream("GET", current, headers={"Accept": "image/*"}) as resp:
                    if resp.is_redirect:
                        location = resp.headers.get("location", "")
                        current = urljoin(current, location)
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
                        if time.monotonic() > deadline:
                            raise httpx.ReadTimeout("total download time exceeded")
                        chunks.append(chunk)
                    return b"".join(chunks)
            except httpx.TimeoutException:
                raise FaceplaneError(
                    Err.DOWNLOAD_TIMEOUT, "Downloading the image timed out.", url=url
                ) from None
            except httpx.HTTPError as exc:
                raise FaceplaneError(
                    Err.DOWNLOAD_FAILED, f"Downloading the image failed: {exc}.", url=url
                ) from None
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
