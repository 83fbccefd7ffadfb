"""Which targets the network guard refuses."""

import ipaddress

import pytest

from crawler.network import address_refusal, host_refusal


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
