"""Pay per crawl in cluster mode: two worker processes share one budget in Redis.

The runtime builds ``crawler.cluster.budget.RedisLedger`` when the job is clustered: the
workers reserve against the same totals, so together they never spend more than the job's
budget, and the shared totals say what was spent. A ledger whose Redis is gone holds nothing
(the URL is refused, never paid).
"""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from crawler.audit.log import verify_file
from crawler.cluster.budget import RedisLedger, spent_key
from crawler.cluster.connection import redis_client
from crawler.cluster.keys import JobKeys
from crawler.demo.webbotauth import WebBotAuthVerifier
from crawler.identity.keys import generate_key, jwks, load_key
from crawler.policy.ledger import FailClosedLedger, PaymentPolicy
from crawler.policy.payment import PayPerCrawl, Refuse
from tests.paycrawl_server import PayCrawlServer, PricedPage

from ..integration.conftest import ROOT, read_jsonl, run_cli, write_config
from .conftest import CLUSTER_SECRET

AGENT = "https://paying-crawler.example"


def start_worker(cfg: Path, name: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "POLITE_CLUSTER_SECRET": CLUSTER_SECRET}
    with open(log, "wb") as fh:
        return subprocess.Popen([sys.executable, "-m", "crawler", "run", str(cfg),
                                 "--worker", name], cwd=ROOT, env=env, stdout=fh,
                                stderr=subprocess.STDOUT)


def test_two_workers_share_one_budget(tmp_path, redis_url):
    key = tmp_path / "identity.pem"
    generate_key(key)
    verifier = WebBotAuthVerifier(AGENT, jwks([load_key(key).jwk]))
    paths = [f"/p{i}" for i in range(8)]
    # two origins (two sites), every page priced
    servers = [PayCrawlServer(pages={p: PricedPage() for p in paths},
                              verify=lambda h, m, u: verifier.verify(m, u, h) is None)
               for _ in range(2)]
    for server in servers:
        server.start()
    urls = [s.url(p) for p in paths for s in servers]
    try:
        cfg = write_config(
            tmp_path / "job.yaml", job="paytest", seeds=urls,
            cluster={"redis_url": redis_url},
            identity={"key_file": str(key), "signature_agent": AGENT},
            payment={"max_price": "USD 0.01", "budget": "USD 0.04",
                     "per_origin_budget": "USD 1.00"},
            settings={"DOWNLOAD_DELAY": 0.3, "POLITE_CLUSTER_WORKER_TTL": 3,
                      "POLITE_CLUSTER_HEARTBEAT": 0.5, "POLITE_CLUSTER_IDLE_CLOSE": 1.5,
                      "CONCURRENT_REQUESTS": 8})
        seeded = run_cli("seed", str(cfg))
        assert seeded.returncode == 0, seeded.stderr
        logs = {n: tmp_path / f"{n}.log" for n in ("w1", "w2")}
        procs = {n: start_worker(cfg, n, logs[n]) for n in logs}
        for name, p in procs.items():
            try:
                p.wait(180)
            except subprocess.TimeoutExpired:
                for q in procs.values():
                    q.kill()
                pytest.fail(f"worker {name} did not finish:\n{logs[name].read_text()[-3000:]}")
    finally:
        for server in servers:
            server.stop()
    for name, p in procs.items():
        assert p.returncode == 0, logs[name].read_text()[-3000:]
    # the site charged exactly the budget, never more, over both workers
    assert sum(s.total_charged() for s in servers) == Decimal("0.04")
    assert sum(len(s.charges) for s in servers) == 4
    out = tmp_path / "out"
    audits = {n: read_jsonl(out / f"audit-{n}.jsonl") for n in logs}
    for n in logs:
        assert verify_file(out / f"audit-{n}.jsonl").ok
    charged = [r["payment"]["charged"] for a in audits.values() for r in a
               if r.get("result") == "pay-charge" and r["payment"]["charged"]]
    assert sorted(charged) == ["USD 0.01"] * 4
    # both workers decided payments against the one budget (pay or refuse)
    paid_by = {n for n, a in audits.items() for r in a if r.get("result") == "pay-decision"}
    assert paid_by == set(logs)
    decided = {}
    for a in audits.values():
        for r in a:
            if r["decision"] in ("allow", "deny"):
                decided[r["url"]] = r
    assert len(decided) == len(urls)
    refused = [r for r in decided.values() if r["decision"] == "deny"]
    assert len(refused) == len(urls) - 4
    assert all("over the job budget (USD 0.04" in r["reasons"][0]["rule"] for r in refused)
    # the shared totals in Redis: integer micro-units
    client = redis_client(redis_url)
    try:
        assert client.hget(spent_key(JobKeys("paytest")), "*") == b"40000"
        # Redis loses the budget (as `seed --restore` leaves it today): a worker whose own log
        # shows spending refuses to pay rather than start the budget again
        client.delete(spent_key(JobKeys("paytest")))
    finally:
        client.close()
    payer = next(n for n, a in audits.items() if any(
        r.get("result") == "pay-charge" and r["payment"]["charged"] for r in a))
    again = start_worker(cfg, payer, tmp_path / "again.log")
    again.wait(120)
    text = (tmp_path / "again.log").read_text()
    assert "the payment state was lost; nothing is paid" in text, text[-3000:]
    # `seed --restore` rebuilds the shared budget from every worker's log: what they spent
    client = redis_client(redis_url)
    try:
        client.delete(spent_key(JobKeys("paytest")))
        restored = run_cli("seed", str(cfg), "--restore")
        assert restored.returncode == 0, restored.stderr
        assert "pay per crawl: 0.04 " in restored.stdout, restored.stdout[-400:]  # not more
        assert client.hget(spent_key(JobKeys("paytest")), "*") == b"40000"
    finally:
        client.close()


def test_a_ledger_whose_redis_is_gone_pays_nothing():
    policy = PaymentPolicy.from_config({"max_price": "USD 0.01", "budget": "USD 1"})
    dead = redis_client("redis://127.0.0.1:1/0")  # nothing listens on port 1
    try:
        ppc = PayPerCrawl(policy, FailClosedLedger(RedisLedger(dead, JobKeys("t"), policy)))
        ans = ppc.decide("https://a.example", 402, {"crawler-price": ["USD 0.01"]})
    finally:
        dead.close()
    assert isinstance(ans, Refuse) and "payment state unreadable" in ans.reason
    assert [k for k, _ in ans.records] == ["pay-quote", "pay-decision"]
