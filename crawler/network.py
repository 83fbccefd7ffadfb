"""Which addresses a crawl may connect to (sans-IO: pure ``ipaddress`` logic).

Loopback, private (RFC 1918, ULA), link-local (incl. the cloud metadata address
169.254.169.254), CGNAT, multicast, reserved and unspecified addresses are refused unless
the config sets ``allow_private_networks: true``.
"""

from __future__ import annotations

import ipaddress

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def parse_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def address_refusal(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why ``ip`` is not a public address, or None when it is one."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return address_refusal(ip.ipv4_mapped)
    for attr, label in (
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local (incl. cloud metadata)"),
        ("is_private", "private network"),
        ("is_multicast", "multicast"),
        ("is_unspecified", "unspecified"),
        ("is_reserved", "reserved"),
    ):
        if getattr(ip, attr):
            return f"{ip} is a {label} address"
    if not ip.is_global:
        return f"{ip} is not a global address"
    return None


def host_refusal(host: str) -> str | None:
    """Refusal for a host known without DNS (IP literal or a local name), else None."""
    h = host.lower().rstrip(".")
    if h in _LOCAL_NAMES or h.endswith(".localhost"):
        return f"{host} is a loopback name"
    ip = parse_ip(h)
    return address_refusal(ip) if ip is not None else None
