"""The Spawning-compatible registry server (crawler.registry.server), on 127.0.0.1:0."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from crawler.registry.entries import parse_entry
from crawler.registry.index import RegistryIndex
from crawler.registry.server import MAX_BODY_BYTES, RegistryServer, serve
from crawler.registry.spawning import (
    SPAWNING_PATH,
    parse_spawning_response,
    spawning_request_body,
)
from crawler.registry.sqlite import SqliteRegistry, import_list

ROOT = Path(__file__).resolve().parent.parent
LIST = "example.com\nhttps://origin.test\nhttps://prefix.test/private/\nfoo\n"


def post(url: str, body: bytes, headers: dict[str, str] | None = None,
         ) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "text/plain", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("registry")
    (d / "list.txt").write_text(LIST, encoding="utf-8")
    import_list(d / "list.txt", d / "list.db")
    return d / "list.db"


@pytest.fixture(params=["memory", "sqlite"])
def backend(request: pytest.FixtureRequest, db_path: Path):
    if request.param == "memory":
        yield RegistryIndex.from_file(db_path.with_name("list.txt"))[0]
    else:
        db = SqliteRegistry(db_path)
        yield db
        db.close()


def test_answers_in_request_order(backend: RegistryIndex | SqliteRegistry) -> None:
    with RegistryServer(backend) as server:
        urls = ["https://prefix.test/private/a.jpg", "https://www.example.com/",
                "http://origin.test/", "https://origin.test/x", "https://example.org/",
                "https://www.example.com/"]
        body = ("\n".join(urls[:3]) + "\n\n  \r\n" + "\r\n".join(urls[3:]) + "\n").encode()
        status, data = post(server.query_url, body)
    assert status == 200
    # the matching entry is an extension (evidence for the audit log) on opted-out answers
    assert all(("entry" in item) == item["optOut"] for item in data["urls"])
    data = {"urls": [{k: item[k] for k in ("url", "optOut", "optIn")} for item in data["urls"]]}
    assert data == {"urls": [
        {"url": urls[0], "optOut": True, "optIn": False},
        {"url": urls[1], "optOut": True, "optIn": False},
        {"url": urls[2], "optOut": False, "optIn": False},
        {"url": urls[3], "optOut": True, "optIn": False},
        {"url": urls[4], "optOut": False, "optIn": False},
        {"url": urls[5], "optOut": True, "optIn": False},
    ]}
    assert [(r.method, r.path, r.urls, r.status) for r in server.requests] == [
        ("POST", SPAWNING_PATH, 6, 200)]


def test_trailing_slash_and_invalid_urls(backend: RegistryIndex | SqliteRegistry) -> None:
    with RegistryServer(backend) as server:
        status, data = post(server.query_url + "/",
                            b"ftp://example.com/\nhttps://example.com/\nnot a url")
    assert status == 200
    items = data["urls"]
    assert [(i["url"], i["optOut"]) for i in items] == [
        ("ftp://example.com/", False), ("https://example.com/", True), ("not a url", False)]
    assert "only http and https" in items[0]["error"]
    assert "error" not in items[1]
    assert "error" in items[2]


def test_round_trip_with_the_client_codec(backend: RegistryIndex | SqliteRegistry) -> None:
    urls = ["https://a.example.com/x.jpg", "https://b.test/y.jpg", "https://origin.test"]
    with RegistryServer(backend) as server:
        req = urllib.request.Request(server.query_url, data=spawning_request_body(urls),
                                     method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            result, problems = parse_spawning_response(resp.read(), urls, status=resp.status)
    assert result == {urls[0]: True, urls[1]: False, urls[2]: True}
    assert problems == ()


def test_too_many_urls_is_413(backend: RegistryIndex | SqliteRegistry) -> None:
    with RegistryServer(backend, max_urls=3) as server:
        ok, _ = post(server.query_url, b"https://a.test/\n" * 3)
        status, data = post(server.query_url, b"https://a.test/\n" * 4)
    assert ok == 200
    assert status == 413 and "at most 3" in data["error"]
    assert [r.urls for r in server.requests] == [3, 4]


def test_body_over_the_limit_is_413_without_reading_it(backend) -> None:
    with RegistryServer(backend) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.putrequest("POST", SPAWNING_PATH)
        conn.putheader("Content-Length", str(MAX_BODY_BYTES + 1))
        conn.endheaders()
        conn.send(b"https://a.test/\n")  # the rest never comes
        resp = conn.getresponse()
        data = json.loads(resp.read())
        conn.close()
    assert resp.status == 413 and "body over" in data["error"]


def test_api_key(backend: RegistryIndex | SqliteRegistry) -> None:
    body = b"https://example.com/"
    with RegistryServer(backend, api_key="s3cret") as server:
        missing = post(server.query_url, body)
        wrong = post(server.query_url, body, {"Authorization": "API nope"})
        bearer = post(server.query_url, body, {"Authorization": "Bearer s3cret"})
        right = post(server.query_url, body, {"Authorization": "API s3cret"})
        health = get(server.url + "/health")
    assert missing[0] == wrong[0] == bearer[0] == 401
    assert "API key" in missing[1]["error"]
    assert right[0] == 200
    assert right[1]["urls"][0]["optOut"] is True
    assert right[1]["urls"][0]["url"] == "https://example.com/"
    assert health[0] == 200  # health needs no key


def test_no_key_configured_ignores_authorization(backend) -> None:
    with RegistryServer(backend) as server:
        status, _ = post(server.query_url, b"https://example.com/", {"Authorization": "API x"})
    assert status == 200


def test_health_and_not_found(backend: RegistryIndex | SqliteRegistry) -> None:
    with RegistryServer(backend) as server:
        assert get(server.url + "/health") == (200, {"status": "ok", "entries": 3})
        assert get(server.url + "/nope")[0] == 404
        assert get(server.url + SPAWNING_PATH)[0] == 404
        assert post(server.url + "/api/v2/query", b"x")[0] == 404
        req = urllib.request.Request(server.query_url, data=b"x", method="PUT")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, timeout=10)
        info.value.close()
        assert info.value.code == 404
    assert len(server.requests) == 5


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "10.0.0.1", "::", "example.com"])
def test_refuses_non_loopback_hosts(host: str) -> None:
    index = RegistryIndex([])
    with pytest.raises(ValueError, match="loopback"):
        RegistryServer(index, host=host)
    RegistryServer(index, host=host, allow_public=True)  # constructing does not bind


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost"])
def test_accepts_loopback_hosts(host: str) -> None:
    with RegistryServer(RegistryIndex([parse_entry("example.com")]), host=host) as server:
        assert get(server.url + "/health")[1]["entries"] == 1


def test_ipv6_loopback() -> None:
    try:
        server = RegistryServer(RegistryIndex([]), host="::1").start()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        assert server.url.startswith("http://[::1]:")
        assert get(server.url + "/health")[0] == 200
    finally:
        server.stop()


def test_concurrent_clients_on_sqlite(db_path: Path) -> None:
    urls = [f"https://h{i}.example.com/" for i in range(40)] + \
        [f"https://h{i}.example.net/" for i in range(40)]
    errors: list[BaseException] = []

    def client() -> None:
        try:
            for _ in range(10):
                status, data = post(server.query_url, "\n".join(urls).encode())
                assert status == 200
                assert [i["optOut"] for i in data["urls"]] == [True] * 40 + [False] * 40
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    with SqliteRegistry(db_path) as db, RegistryServer(db) as server:
        threads = [threading.Thread(target=client) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    assert len(server.requests) == 80
    assert {r.urls for r in server.requests} == {80}


def test_backend_failure_is_500_not_allowed() -> None:
    class Broken(RegistryIndex):
        def lookup_many(self, urls):
            raise RuntimeError("disk on fire")

    with RegistryServer(Broken([])) as server:
        status, data = post(server.query_url, b"https://example.com/")
    assert status == 500 and "disk on fire" in data["error"]


def test_serve_refuses_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert serve(tmp_path / "missing.db") == 2
    assert "cannot open registry" in capsys.readouterr().err
    monkeypatch.delenv("REGISTRY_TEST_KEY", raising=False)
    assert serve(tmp_path / "missing.db", api_key_env="REGISTRY_TEST_KEY") == 2
    assert "REGISTRY_TEST_KEY" in capsys.readouterr().err
    (tmp_path / "list.txt").write_text("example.com\n", encoding="utf-8")
    assert serve(tmp_path / "list.txt", host="0.0.0.0", port=0) == 2
    assert "loopback" in capsys.readouterr().err


def test_serve_until_interrupted(db_path: Path) -> None:
    code = ("import sys; from crawler.registry.server import serve; "
            "sys.exit(serve(sys.argv[1], port=0, api_key_env='REGISTRY_TEST_KEY'))")
    env = {**os.environ, "REGISTRY_TEST_KEY": "k"}
    proc = subprocess.Popen([sys.executable, "-c", code, str(db_path)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "Serving 3 registry entries (SQLite database" in line, proc.stderr.read()
        assert "API key required" in line
        query_url = line.split(" at ", 1)[1].split()[0]
        status, data = post(query_url, b"https://example.com/", {"Authorization": "API k"})
        assert (status, data["urls"][0]["optOut"]) == (200, True)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
