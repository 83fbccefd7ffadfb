"""Revalidation speed: a 10,000-document corpus over 50 local origins.

Builds an output directory (corpus.jsonl + a real audit log) for N documents spread over M
origins served on loopback, then runs `polite-crawl revalidate` on it. Prints documents per
second and requests per document, and checks that site-level files were fetched once per
origin (not per document).

    python bench/revalidate_bench.py [--docs 10000] [--origins 50]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crawler.audit.log import AuditWriter
from crawler.demo.web import LocalWeb, Page, Site


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=10_000)
    ap.add_argument("--origins", type=int, default=50)
    args = ap.parse_args()
    per = args.docs // args.origins
    body = "<html><head><title>t</title></head><body>" + "text " * 200 + "</body></html>"
    sites = []
    for i in range(args.origins):
        pages = {"/robots.txt": Page("User-agent: *\nDisallow: /private/\n",
                                     content_type="text/plain")}
        pages.update({f"/d/{j}.html": Page(body) for j in range(per)})
        sites.append(Site(f"o{i}", "bench", pages))
    with LocalWeb(sites) as web, tempfile.TemporaryDirectory() as d:
        out = Path(d) / "out"
        writer = AuditWriter(out / "audit.jsonl", job="bench")
        with open(out / "corpus.jsonl", "w") as fh:
            for s in sites:
                for j in range(per):
                    url = f"{web.origin(s.name)}/d/{j}.html"
                    rec = writer.write(url=url, decision="allow", reasons=[],
                                       policy_sha256="0" * 64)
                    fh.write(json.dumps({"url": url, "fetched_at": "2026-11-27T00:00:00Z",
                                         "status": 200, "content_type": "text/html",
                                         "sha256": "0" * 64, "audit_seq": rec["seq"],
                                         "audit_hash": rec["hash"]}) + "\n")
        writer.close()
        cfg = {"job": "bench", "user_agent": "BenchBot/1.0 (+https://example.org/bot)",
               "seeds": [], "allow_private_networks": True,
               "settings": {"DOWNLOAD_DELAY": 0, "AUTOTHROTTLE_ENABLED": False,
                            "CONCURRENT_REQUESTS": 32, "CONCURRENT_REQUESTS_PER_DOMAIN": 1,
                            "LOG_LEVEL": "INFO"}}
        (Path(d) / "c.yaml").write_text(yaml.safe_dump(cfg))
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "crawler", "revalidate", str(out),
                               "--config", str(Path(d) / "c.yaml")],
                              capture_output=True, text=True, cwd=ROOT, check=True)
        wall = time.perf_counter() - t0
        paths = Counter(r.path.rsplit("/", 1)[-1] if r.path.startswith("/d/") else r.path
                        for r in web.requests)
        total = len(web.requests)
    m = re.search(r"'elapsed_time_seconds': ([0-9.]+)", proc.stderr)
    elapsed = float(m.group(1)) if m else wall
    print(f"documents: {args.docs} over {args.origins} origins")
    print(f"requests: {total} ({total / args.docs:.3f} per document); robots.txt "
          f"{paths['/robots.txt']}, tdmrep.json {paths['/.well-known/tdmrep.json']}, "
          f"ai.txt {paths['/ai.txt']} (once per origin = {args.origins})")
    print(f"revalidation time: {elapsed:.1f} s (wall {wall:.1f} s); "
          f"documents per second: {args.docs / elapsed:.0f}")


if __name__ == "__main__":
    main()
