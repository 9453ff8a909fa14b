"""Which network addresses the server may connect to on a caller's behalf (SSRF rules).

A caller names a URL; the server refuses to reach its own loopback, the private networks
around it, link-local space (cloud metadata at 169.254.169.254) and every IPv6 form that
carries an IPv4 address a router or the kernel could translate back to one of those.
"""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Global unicast: everything IANA hands out for the public IPv6 internet lies in 2000::/3.
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
# NAT64 well-known prefix (RFC 6052): the last 32 bits are the IPv4 address a DNS64 resolver
# translated, so it is judged by that address (an IPv6-only host reaches IPv4 sites this way).
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# Refused whatever they carry: tunnelling and translation forms whose IPv4 target cannot be
# judged from the address alone, or which the kernel may route to an IPv4 address directly.
REFUSED_IPV6 = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "::/96",  # IPv4-compatible (deprecated, RFC 4291): [::127.0.0.1]
        "::ffff:0:0:0/96",  # IPv4-translated (SIIT, RFC 2765)
        "64:ff9b:1::/48",  # local-use NAT64 (RFC 8215): the embedding length is local
        "2002::/16",  # 6to4 (deprecated, RFC 7526): a relay forwards to the embedded IPv4
        "2001::/32",  # Teredo: tunnels to an IPv4 host through a relay
    )
)


# Special-purpose IPv4 that Python's is_global (3.11) counts as global.
REFUSED_IPV4 = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "192.0.0.0/24",  # IETF protocol assignments (RFC 6890)
        "192.88.99.0/24",  # 6to4 relay anycast (deprecated, RFC 7526)
    )
)


def ipv4_refused(ip: ipaddress.IPv4Address) -> bool:
    """True for loopback, private, shared (CGNAT), link-local, multicast and reserved IPv4."""
    return not ip.is_global or ip.is_multicast or any(ip in net for net in REFUSED_IPV4)


def address_refused(ip: IPAddress) -> bool:
    """True for an address the server must not connect to for a caller (every form, v4 and v6)."""
    if isinstance(ip, ipaddress.IPv4Address):
        return ipv4_refused(ip)
    if ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d is a.b.c.d on a dual-stack socket
        return ipv4_refused(ip.ipv4_mapped)
    if ip in _NAT64:
        return ipv4_refused(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if any(ip in net for net in REFUSED_IPV6):
        return True
    # Python's is_global misses site-local (fec0::/10) and the deprecated IPv4 forms; keeping
    # to global unicast refuses those and every range IANA has not handed out.
    return ip not in _GLOBAL_UNICAST or not ip.is_global or ip.is_multicast
