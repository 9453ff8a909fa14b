"""engine/addresses.py: the SSRF address rules, every IPv4 and IPv6 form, and check_url's answer."""

from __future__ import annotations

import ipaddress

import pytest

from faceplane.engine.addresses import address_refused
from faceplane.engine.fetch import FetchPolicy, check_url
from faceplane.errors import Err, FaceplaneError

REFUSED = [
    # IPv4
    "127.0.0.1",
    "127.8.9.10",
    "0.0.0.0",
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # shared address space (CGNAT)
    "192.0.0.8",  # IETF protocol assignments
    "192.88.99.1",  # 6to4 relay anycast
    "198.18.0.1",  # benchmarking
    "192.0.2.1",  # documentation
    "224.0.0.1",  # multicast
    "240.0.0.1",  # reserved
    "255.255.255.255",
    # IPv6, plain
    "::",
    "::1",
    "fe80::1",  # link-local
    "fc00::1",  # unique local
    "fd12:3456::1",
    "fec0::1",  # site-local (deprecated; Python's is_global says True)
    "ff02::1",  # multicast
    "100::1",  # discard-only
    "2001:db8::1",  # documentation
    # IPv6 carrying IPv4
    "::ffff:127.0.0.1",  # IPv4-mapped loopback
    "::ffff:169.254.169.254",
    "::127.0.0.1",  # IPv4-compatible, ::/96: refused whatever it embeds
    "::8.8.8.8",
    "::ffff:0:127.0.0.1",  # IPv4-translated (SIIT)
    "64:ff9b::127.0.0.1",  # NAT64 of loopback
    "64:ff9b::10.0.0.1",  # NAT64 of a private address
    "64:ff9b::169.254.169.254",
    "64:ff9b:1::808:808",  # local-use NAT64, refused wholesale
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:808:808::1",  # 6to4 of 8.8.8.8: refused wholesale too
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
]

ALLOWED = [
    "8.8.8.8",
    "93.184.216.34",
    "1.1.1.1",
    "2606:4700:4700::1111",
    "2a00:1450:4001:80b::200e",
    "::ffff:8.8.8.8",  # mapped form of a public address
    "64:ff9b::8.8.8.8",  # NAT64 of a public address: how IPv6-only hosts reach IPv4 sites
]


@pytest.mark.parametrize("address", REFUSED)
def test_an_address_the_server_must_not_reach_is_refused(address: str) -> None:
    assert address_refused(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ALLOWED)
def test_a_public_address_is_allowed(address: str) -> None:
    assert not address_refused(ipaddress.ip_address(address))


def literal_url(address: str) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:8080/x.jpg"


@pytest.mark.parametrize("address", REFUSED)
def test_a_url_naming_a_refused_address_is_url_forbidden(address: str) -> None:
    with pytest.raises(FaceplaneError) as info:
        check_url(literal_url(address), FetchPolicy())
    assert info.value.err is Err.URL_FORBIDDEN


@pytest.mark.parametrize("address", ALLOWED)
def test_a_url_naming_a_public_address_passes_the_check(address: str) -> None:
    check_url(literal_url(address), FetchPolicy())  # literals: no DNS lookup is made


def test_url_forbidden_names_the_url_but_not_what_the_host_resolved_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = __import__("socket").getaddrinfo

    def fake(host: str, port: object, *args: object, **kwargs: object) -> object:
        if host == "intranet.example.com":  # the attacker's name for an internal address
            return [(2, 1, 6, "", ("10.20.30.40", 80))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr("socket.getaddrinfo", fake)
    url = "http://intranet.example.com/a.jpg"
    with pytest.raises(FaceplaneError) as info:
        check_url(url, FetchPolicy())
    assert info.value.err is Err.URL_FORBIDDEN
    assert info.value.details == {"url": url}
    assert "10.20.30.40" not in info.value.message


def test_a_name_with_one_refused_address_among_public_ones_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers = [(2, 1, 6, "", ("8.8.8.8", 80)), (2, 1, 6, "", ("127.0.0.1", 80))]
    monkeypatch.setattr("socket.getaddrinfo", lambda *a, **k: answers)
    with pytest.raises(FaceplaneError) as info:
        check_url("http://mixed.example.com/a.jpg", FetchPolicy())
    assert info.value.err is Err.URL_FORBIDDEN
