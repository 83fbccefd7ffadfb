"""Shared fixtures for the audit tests: ``local_tsa``, a started throw-away RFC 3161 TSA."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.tsa_server import LocalTSA, OpenSSLMissing


@pytest.fixture
def local_tsa(tmp_path, monkeypatch) -> Iterator[LocalTSA]:
    """A started :class:`tests.tsa_server.LocalTSA` (mode "ok"; set ``.mode`` to misbehave).

    Function scope: start-up (two EC keys, two certificates, an HTTP thread) takes a few
    milliseconds. A missing ``openssl`` binary fails the test with an install hint; it never
    skips. Proxies from the environment are bypassed for 127.0.0.1.
    """
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    tsa = LocalTSA(tmp_path / "tsa")
    try:
        tsa.start()
    except OpenSSLMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield tsa
    finally:
        tsa.stop()
