"""Which targets the network guard refuses."""

import ipaddress
import random

import pytest

from crawler.policy.network import address_refusal, host_refusal, normalize_host, parse_ip


@pytest.mark.parametrize(
    "host, refused",
    [
        ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True),
        ("localhost", True), ("LOCALHOST.", True), ("foo.localhost", True),
        ("10.1.2.3", True), ("172.16.0.1", True), ("192.168.1.1", True),
        ("169.254.169.254", True), ("fe80::1", True), ("fd00::1", True),
        ("100.64.0.1", True), ("0.0.0.0", True), ("224.0.0.1", True),
        ("::ffff:127.0.0.1", True), ("::ffff:10.0.0.1", True),
        ("93.184.216.34", False), ("2606:2800:220:1:248:1893:25c8:1946", False),
        ("example.org", False),  # a name: decided after DNS resolution
    ],
)
def test_host_refusal(host, refused):
    assert (host_refusal(host) is not None) is refused


def test_address_refusal_says_why():
    assert "loopback" in address_refusal(ipaddress.ip_address("127.0.0.1"))
    assert "link-local" in address_refusal(ipaddress.ip_address("169.254.169.254"))
    assert address_refusal(ipaddress.ip_address("8.8.8.8")) is None


# --- normalize_host: the one host normal form (registries, network guard, origin keys) --------

NORMALIZE_VECTORS = [
    # host, normal form
    ("example.com", "example.com"),
    ("EXAMPLE.Com", "example.com"),
    ("example.com.", "example.com"),  # one trailing dot: the same name
    ("Example.COM\u3002", "example.com"),  # ideographic full stop
    ("example.com..", "example.com."),  # only one: the registry refuses the rest
    ("bücher.example", "xn--bcher-kva.example"),
    ("BÜCHER.Example.", "xn--bcher-kva.example"),
    ("XN--BCHER-KVA.example", "xn--bcher-kva.example"),  # A-labels lower-cased
    ("bücher\u3002example", "xn--bcher-kva.example"),
    ("\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54", "localhost"),  # full-width
    ("127.0.0.2", "127.0.0.2"),
    ("127\u30020\u30020\u30022", "127.0.0.2"),
    ("::ffff:127.0.0.2", "127.0.0.2"),  # IPv4-mapped: the IPv4 address
    ("[::ffff:127.0.0.2]", "127.0.0.2"),
    ("[::FFFF:7F00:2]", "127.0.0.2"),
    ("[0:0:0:0:0:ffff:127.0.0.2]", "127.0.0.2"),
    ("::ffff:10.0.0.1%eth0", "10.0.0.1"),  # a zone id means nothing on a mapped address
    ("2001:DB8:0:0::1", "2001:db8::1"),  # IPv6: compressed, lower case, no brackets
    ("[2001:0db8::0001]", "2001:db8::1"),
    ("[::1]", "::1"),
    ("fe80::1%eth0", "fe80::1%eth0"),  # zone id kept verbatim
    ("[FE80::1%25Eth0]", "fe80::1%25Eth0"),  # as a URL writes it (RFC 6874)
    ("", ""),
    ("[]", ""),
    (".", ""),
    ("[", "["),
    ("[zz::1]", "zz::1"),  # not an address: lower-cased only
    ("A:B", "a:b"),
    ("\u05d0a.example", "\u05d0a.example"),  # invalid IDNA (bidi rule): kept as it is
    ("Ü" * 70 + ".example", "ü" * 70 + ".example"),  # label too long for IDNA: lower-cased
]


@pytest.mark.parametrize(("host", "normal"), NORMALIZE_VECTORS)
def test_normalize_host(host, normal):
    assert normalize_host(host) == normal
    assert normalize_host(normal) == normal or normal.endswith(".")  # idempotent


def test_normalize_host_never_raises():
    rng = random.Random(1)
    alphabet = "aZ09.-_:[]%\u3002\uff0e\uff61üß\u05d0\u0300\ud800 \x00"
    for _ in range(3000):
        host = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 20)))
        assert isinstance(normalize_host(host), str)


@pytest.mark.parametrize(
    "host",
    ["[::ffff:10.0.0.1]", "[::FFFF:127.0.0.1]", "::ffff:a00:1", "localhost.", "LocalHost.",
     "localhost\u3002", "\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54",
     "127\u30020\u30020\u30021", "[::ffff:169.254.169.254]", "::ffff:10.0.0.1%eth0"],
)
def test_host_refusal_sees_every_spelling(host):
    assert host_refusal(host) is not None


def test_parse_ip_unwraps_ipv4_mapped_addresses():
    assert parse_ip("[::ffff:10.0.0.1]") == ipaddress.IPv4Address("10.0.0.1")
    assert parse_ip("::FFFF:7f00:2") == ipaddress.IPv4Address("127.0.0.2")
    assert parse_ip("127.0.0.2.") == ipaddress.IPv4Address("127.0.0.2")
    assert parse_ip("[2001:DB8::1]") == ipaddress.IPv6Address("2001:db8::1")
    assert parse_ip("example.com") is None and parse_ip("") is None


@pytest.mark.parametrize(("url", "key"), [
    ("https://Example.com:443/l.xml", "https://example.com"),
    ("http://[::ffff:127.0.0.2]:9821/x", "http://127.0.0.2:9821"),
    ("http://EXAMPLE.com./robots.txt", "http://example.com"),
    ("HTTP://bücher.example:8080/", "http://xn--bcher-kva.example:8080"),
    ("http://[2001:DB8::1]/", "http://[2001:db8::1]"),
])
def test_origin_key_is_the_one_origin_form(url, key):
    """Download slots of per-origin files and registry APIs key like origin_of."""
    from crawler.policy.network import origin_key

    assert origin_key(url) == key
