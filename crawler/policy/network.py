"""Which addresses a crawl may connect to (sans-IO: pure ``ipaddress`` logic).

Loopback, private (RFC 1918, ULA), link-local (incl. the cloud metadata address
169.254.169.254), CGNAT, multicast, reserved and unspecified addresses are refused unless
the config sets ``allow_private_networks: true``.
"""

from __future__ import annotations

import encodings.idna
import ipaddress
import re
from urllib.parse import urlsplit

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
#: IDNA 2003 label separators (RFC 3490 §3.1): full stop and its ideographic/full-width forms.
IDNA_DOTS = ".\u3002\uff0e\uff61"
_IDNA_DOTS_RE = re.compile(f"[{IDNA_DOTS}]")


def normalize_host(host: str) -> str:
    """The one normal form of a host name or IP literal, for matching and keys.

    Used for the opt-out registries (entries and looked-up URLs), the network guard and the
    per-origin keys, so that every spelling of one host gives one string.  Pure, no I/O, and
    never raises for a ``str``:

    * one pair of surrounding brackets is removed (``[::1]`` -> ``::1``); the result never has
      brackets -- a caller building a URL or an origin adds them around an IPv6 address
      (any result containing ``:``);
    * an IPv6 literal becomes its compressed lower-case form (``ipaddress``); an IPv4-mapped
      one becomes the IPv4 address (``::ffff:127.0.0.2`` -> ``127.0.0.2``); a zone id
      (``fe80::1%eth0``, or ``%25eth0`` as in a URL) is kept verbatim, case included, except
      on an IPv4-mapped address, which is unwrapped without it; text with a ``:`` that is not
      an IPv6 address is only lower-cased;
    * one trailing dot (or ideographic / full-width dot) is removed: ``example.com.`` ->
      ``example.com``;
    * names are lower-cased; a non-ASCII label is converted to punycode (IDNA 2003, the
      stdlib ``idna`` codec: ``Bücher`` -> ``xn--bcher-kva``) and the ideographic and
      full-width dots separate labels; a label the codec refuses (invalid IDNA, or longer
      than 63 characters) is kept lower-cased as it is, so such a result is not ASCII;
    * an empty host gives ``""``; whitespace is not removed and nothing is validated (the
      registry refuses what is not a host name; the network guard resolves what is not an
      IP literal).
    """
    if host[:1] == "[" and host[-1:] == "]":
        host = host[1:-1]
    if ":" in host:
        try:
            ip6 = ipaddress.IPv6Address(host)
        except ValueError:
            return host.lower()
        if ip6.ipv4_mapped is not None:  # reached as IPv4: a zone id means nothing here
            return str(ip6.ipv4_mapped)
        return ip6.compressed
    if host[-1:] in IDNA_DOTS and host:  # one trailing dot: the same name, fully qualified
        host = host[:-1]
    if host.isascii():
        return host.lower()
    labels = []
    for label in _IDNA_DOTS_RE.split(host):
        if not label.isascii():
            try:
                label = encodings.idna.ToASCII(label).decode("ascii")
            except UnicodeError:
                pass  # deterministic fallback: the label as it is (lower-cased below)
        labels.append(label.lower())
    return ".".join(labels)


def parse_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address of an IP literal host (brackets allowed; IPv4-mapped IPv6 gives the IPv4
    address, see :func:`normalize_host`), or None when ``host`` is not one."""
    host = normalize_host(host)
    if not host or not (host[-1].isdigit() or ":" in host):
        return None
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
    h = normalize_host(host).rstrip(".")
    if h in _LOCAL_NAMES or h.endswith(".localhost"):
        return f"{host} is a loopback name"
    ip = parse_ip(h)
    return address_refusal(ip) if ip is not None else None


_DEFAULT_PORTS = {"http": 80, "https": 443}


def format_origin(scheme: str, host: str | None, port: int | None) -> str:
    """``scheme://host[:port]``: the host in :func:`normalize_host` form (IPv6 in brackets),
    the default port left out (RFC 9309's authority). The one key of an origin: per-origin files,
    download slots, exemptions."""
    h = normalize_host(host or "")
    if ":" in h:
        h = f"[{h}]"
    scheme = scheme.lower()
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{h}"
    return f"{scheme}://{h}:{port}"


def origin_key(url: str) -> str:
    """:func:`format_origin` of a URL string (a port that is not a number is left out)."""
    u = urlsplit(url)
    try:
        port = u.port
    except ValueError:
        port = None
    return format_origin(u.scheme, u.hostname, port)
