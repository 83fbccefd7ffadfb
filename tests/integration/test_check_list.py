"""``polite-crawl check --no-fetch --from-file``: URLs of origins whose files are cached are
decided in place, and each gets the very record the engine path gives it."""

from __future__ import annotations

import json
import random
import subprocess
import sys

from crawler.demo.sites import demo_sites
from crawler.demo.web import LocalWeb

from .conftest import ROOT, run_cli, write_config

VOLATILE = ("time", "seq", "prev_hash", "hash")


def _records(proc) -> dict[str, list[dict]]:
    """The records of each URL (several for one decided again after a backoff), in order."""
    out: dict[str, list[dict]] = {}
    for line in proc.stdout.splitlines():
        rec = json.loads(line)
        for key in VOLATILE:
            rec.pop(key)
        out.setdefault(rec["url"], []).append(rec)
    return out


def test_a_url_list_is_decided_in_place_as_the_engine_decides_it(tmp_path):
    sites = demo_sites()
    rng = random.Random(4)
    with LocalWeb(sites) as web:
        urls = []
        for site in sites:
            origin = web.origin(site.name)
            paths = [p for p in site.pages if not p.startswith("/.well-known")]
            paths += ["/", "/a/b.html?q=1", "/private/x", "/reserved/y.html", "/gallery/z.jpg",
                      "/%7Euser/", "/caf\u00e9", "/a b", "/premium/p.html", "/news/ai.html"]
            for i in range(30):
                urls.append(f"{origin}{rng.choice(paths)}{'' if i % 3 else f'?n={i}'}")
        urls = list(dict.fromkeys(urls))
        rng.shuffle(urls)
        listing = tmp_path / "urls.txt"
        listing.write_text("# a comment\n\n" + "\n".join(urls) + "\n", encoding="utf-8")
        registry = tmp_path / "optouts.txt"
        registry.write_text(web.origin("open") + "/b.html\n")
        job = {"seeds": [], "honor_agents": ["GPTBot", "CCBot"],
               "registries": [{"type": "file", "path": str(registry)}]}
        settings = {"POLITE_SITE_RETRY_BACKOFF": 0.2,
                    # patient: the undetermined (robots 5xx) get every retry however loaded
                    # the machine (no idle cut-off)
                    "POLITE_MAX_IDLE_WAIT": 0, "LOG_LEVEL": "WARNING"}
        cfg = write_config(tmp_path / "c.yaml", **job, settings=settings)
        args = ("check", "--no-fetch", "--from-file", str(listing), "--config", str(cfg))
        fast = run_cli(*args)
        assert fast.returncode == 0, fast.stderr[-3000:]
        # the same config, with every URL through the engine
        engine = write_config(tmp_path / "engine.yaml", **job,
                              settings={**settings, "POLITE_CHECK_IN_PLACE": False})
        slow = subprocess.run([sys.executable, "-m", "crawler", *args[:-1], str(engine)],
                              capture_output=True, text=True, timeout=120, cwd=ROOT,
                              check=False)
        assert slow.returncode == 0, slow.stderr[-3000:]
    got, want = _records(fast), _records(slow)
    assert len(got) == len(urls) and got == want  # (URLs as requests carry them)
    decided = int(fast.stderr.split(" decided from the cached")[0].rsplit("; ", 1)[1])
    assert decided > len(urls) // 2  # most were decided in place
    assert "decided from the cached" not in slow.stderr
    flat = [r for recs in got.values() for r in recs]
    decisions = {r["decision"] for r in flat}
    signals = {r["reasons"][0]["signal"] for r in flat if r["decision"] == "deny"}
    assert decisions == {"allow", "deny"} and {"robots", "network", "registry"} <= signals
    # each line is the record as written: canonical JSON
    line = fast.stdout.splitlines()[0]
    assert line == json.dumps(json.loads(line), sort_keys=True, separators=(",", ":"),
                              ensure_ascii=False)


def test_a_bad_line_is_refused_with_its_number(tmp_path):
    listing = tmp_path / "urls.txt"
    listing.write_text("http://127.0.0.1:1/\nftp://x/\n")
    proc = run_cli("check", "--no-fetch", "--from-file", str(listing))
    assert proc.returncode == 2 and f"{listing}:2" in proc.stderr
    proc = run_cli("check", "--no-fetch")
    assert proc.returncode == 2 and "--from-file" in proc.stderr
