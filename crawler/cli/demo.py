"""``polite-crawl demo``: crawl the bundled local demo web (its sites each show a signal) and
print a table of the decisions; ``--serve``: only serve the demo web."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from crawler.audit.checkpoint import checkpoints_path, read_checkpoints, verify_checkpoints
from crawler.audit.log import verify_file
from crawler.audit.outputs import verify_output_dir
from crawler.cli.common import UsageError, run_crawl
from crawler.cli.run import print_summary
from crawler.config.job import parse_config
from crawler.demo.sites import (
    DEMO_PAYMENT,
    DEMO_PORTS,
    DEMO_SIGNATURE_AGENT,
    DEMO_TOKEN,
    demo_sites,
)
from crawler.demo.web import LocalWeb
from crawler.demo.webbotauth import WebBotAuthVerifier
from crawler.identity.keys import generate_key, jwks, load_key


def register(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="crawl the bundled local demo web; print a table")
    demo.add_argument("--out", default="out/demo", help="output directory (default out/demo)")
    demo.add_argument("--serve", action="store_true",
                      help="only serve the demo web on its fixed ports until interrupted")
    demo.add_argument("--any-port", action="store_true",
                      help="serve on free ports instead of the fixed 8711-8726")
    demo.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    out = Path(args.out).resolve()
    # the demo signs its requests and its audit checkpoints with a key of its own, kept
    # beside (not in) the output directory; its sites that check signatures know its directory
    key = out.parent / f"{out.name}-identity.pem"
    if not key.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        generate_key(key)
    verifier = WebBotAuthVerifier(DEMO_SIGNATURE_AGENT, jwks([load_key(key).jwk]))
    ports = None if args.any_port else DEMO_PORTS
    web = LocalWeb(demo_sites(verifier.verify), ports=ports)
    try:
        web.start()
    except OSError as exc:
        raise UsageError(f"cannot serve the demo web on ports {min(DEMO_PORTS.values())}-"
                         f"{max(DEMO_PORTS.values())} ({exc}); try --any-port") from None
    try:
        if args.serve:
            return _serve_forever(web)
        if (out / "audit.jsonl").exists():
            for name in ("audit.jsonl", "audit.jsonl.head", "corpus.jsonl", "run.json",
                         "audit.checkpoints.jsonl"):
                (out / name).unlink(missing_ok=True)
        out.mkdir(parents=True, exist_ok=True)
        cfg = demo_config(web, out, DEMO_TOKEN)
        cfg["identity"] = {"key_file": str(key), "signature_agent": DEMO_SIGNATURE_AGENT}
        # one site charges per page: the demo pays within a small budget (signed requests)
        cfg["payment"] = dict(DEMO_PAYMENT)
        cfg_path = out / "demo-config.yaml"
        cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
        job = parse_config(cfg, path=cfg_path)
        print(f"Demo web: {len(web.sites)} sites on 127.0.0.1 ports "
              f"{min(web.ports.values())}-{max(web.ports.values())}; crawling as "
              f"{DEMO_TOKEN} (honouring GPTBot groups too)...", file=sys.stderr)
        stats = run_crawl(job, cfg_path, extra_settings={"LOG_LEVEL": "WARNING"})
    finally:
        web.stop()
    print_decision_table(out / "audit.jsonl", web)
    print_summary(job, stats)
    return _demo_verify(out, key)


def _demo_verify(out: Path, key: Path) -> int:
    """What `audit verify OUTPUT_DIR --checkpoints --keys` says of the demo's output."""
    log = out / "audit.jsonl"
    result = verify_file(log)
    print(result.describe(str(log)))
    ok = result.ok
    for check in verify_output_dir(out):
        for line in check.describe():
            print(f"{out}: {line}")
        ok = ok and check.ok
    ident = load_key(key)
    report = verify_checkpoints(log, read_checkpoints(checkpoints_path(log)),
                                keys={ident.keyid: ident.public_key}, require_signed=True)
    for line in [*report.lines, *report.problems]:
        print(f"{log.name}: {line}")
    return 0 if ok and report.ok else 1


def demo_config(web: Any, out: Path, token: str) -> dict[str, Any]:
    return {
        "job": "demo",
        "user_agent": f"{token}/1.0 (+https://github.com/polite-crawler/polite-crawler)",
        "seeds": [web.origin(name) + "/" for name in web.sites],
        "max_pages": 100,
        "purpose": "train-ai",
        "honor_agents": ["GPTBot"],
        "allow_private_networks": True,
        "output_dir": str(out),
        "settings": {"DOWNLOAD_DELAY": 0.05, "AUTOTHROTTLE_ENABLED": False,
                     "POLITE_SITE_RETRY_BACKOFF": 1.0},
    }


def _serve_forever(web: Any) -> int:
    for name, site in web.sites.items():
        print(f"{web.origin(name)}/  {name}: {site.description}")
    print("Serving the demo web; Ctrl-C to stop.", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0


def print_decision_table(audit_path: Path, web: Any = None) -> None:
    """One row per decision, grouped by site (demo order), then in decision order."""
    names = {web.origin(n): n for n in web.sites} if web is not None else {}
    order = {n: i for i, n in enumerate(names.values())}
    rows = []
    for line in audit_path.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if rec["decision"] not in ("allow", "deny", "erase"):
            continue  # write-ahead send/result records: the table shows decisions
        url = rec["url"]
        site = next((n for o, n in names.items() if url.startswith(o + "/")), "")
        path = "/" + url.split("/", 3)[3] if url.count("/") >= 3 else url
        if rec["decision"] == "deny":
            reasons = rec.get("reasons") or []
            signal = ",".join(sorted({r["signal"] for r in reasons}))
            evidence = "; ".join(_evidence_text(r) for r in reasons)
            undecided = rec.get("undecided")
            if undecided:
                evidence += (" [final]" if undecided.get("final") else
                             f" [asked again in {undecided.get('retry_after_s')} s]")
        else:
            signal = "-"
            evidence = "; ".join(_evidence_text(c) for c in rec.get("checks", [])
                                 if c.get("outcome") != "unset") or "no reservation found"
            if rec.get("charged"):  # a page paid for (pay per crawl)
                evidence = f"paid: crawler-charged {rec['charged']}; {evidence}"
        rows.append((order.get(site, len(order)), rec["seq"], site, path, rec["decision"],
                     signal, evidence))
    rows.sort()
    cells = [r[2:] for r in rows]
    header = ("SITE", "PATH", "DECISION", "SIGNAL", "EVIDENCE")
    widths = [max([len(c[i]) for c in cells] + [len(header[i])]) for i in range(4)]
    fmt = "  ".join(f"{{:{w}}}" for w in widths) + "  {}"
    print(fmt.format(*header))
    for c in cells:
        ev = c[4] if len(c[4]) <= 100 else c[4][:97] + "..."
        print(fmt.format(*c[:4], ev))


def _evidence_text(ev: dict[str, Any]) -> str:
    where = ev.get("channel", "")
    agent = ev.get("agent")
    if ev.get("signal") == "robots" and agent:
        where += f" [{agent}]"
    rule = " | ".join(str(ev.get("rule", "")).splitlines())
    return f"{ev.get('signal')} {where}: {rule}"
