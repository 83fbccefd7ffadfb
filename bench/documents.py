"""The document stage (``collect: [html, pdf, image]``): its cost per file and a crawl end to end.

Generates a local web of PDFs and images (default 200 PDFs of 1-8 pages and 500 images: JPEGs
of 64-512 px with noise, some with XMP, and PNGs; every tenth file reserved inside: XMP
``tdm:reservation`` 1 in a PDF, ``plus:DataMining`` DMI-PROHIBITED-AIMLTRAINING in a JPEG),
linked from 50 HTML pages, and

1. times the document stage on every file in this process: the embedded readers
   (``crawler.crawl.reservation.EMBEDDED_READERS``, merged) plus ``Policy.at_embedded``, per file,
   and prints PDFs/s and images/s of that time alone (and, apart, pypdf's text extraction per
   PDF, which the spider does for a collected PDF);
2. crawls the web with ``polite-crawl run`` (``collect: [html, pdf, image]``) and prints
   pages and files decided per second end to end (Scrapy's ``elapsed_time_seconds``), with
   what was collected and refused.

    python bench/documents.py [--pdfs 200] [--images 500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from crawl_throughput import SETTINGS, run_polite  # noqa: E402

from crawler.corpus.documents import pdf_text  # noqa: E402
from crawler.crawl.reservation import EMBEDDED_READERS  # noqa: E402
from crawler.demo.web import LocalWeb, Page, Site  # noqa: E402
from crawler.policy.reservation import Policy, merge_embedded  # noqa: E402
from tests.documents_fixtures import dmi, pdf, tdm_xmp  # noqa: E402


def make_files(n_pdfs: int, n_images: int, seed: int = 7) -> dict[str, tuple[bytes, str]]:
    import io

    from PIL import Image

    rnd = random.Random(seed)
    files: dict[str, tuple[bytes, str]] = {}
    words = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod".split()
    for i in range(n_pdfs):
        text = " ".join(rnd.choice(words) for _ in range(40))
        xmp = tdm_xmp("1") if i % 10 == 0 else (tdm_xmp("0") if i % 10 == 1 else None)
        files[f"/doc/{i}.pdf"] = (pdf(text, xmp, pages=rnd.randint(1, 8)), "application/pdf")
    for i in range(n_images):
        size = rnd.choice((64, 128, 256, 512))
        img = Image.effect_noise((size, size), 40).convert("RGB")
        out = io.BytesIO()
        if i % 5 == 4:
            img.save(out, "PNG")
            files[f"/img/{i}.png"] = (out.getvalue(), "image/png")
            continue
        kw = {}
        if i % 10 == 0:
            kw["xmp"] = dmi("DMI-PROHIBITED-AIMLTRAINING")
        elif i % 10 == 1:
            kw["xmp"] = dmi("DMI-ALLOWED")
        img.save(out, "JPEG", quality=85, **kw)
        files[f"/img/{i}.jpg"] = (out.getvalue(), "image/jpeg")
    return files


def make_site(files: dict[str, tuple[bytes, str]], n_pages: int = 50) -> Site:
    pages = {"/robots.txt": Page("User-agent: *\nAllow: /\n", content_type="text/plain")}
    paths = sorted(files)
    per = -(-len(paths) // n_pages)
    for p in range(n_pages):
        chunk = paths[p * per:(p + 1) * per]
        links = "".join(f'<img src="{x}">' if x.startswith("/img/") else f'<a href="{x}">d</a>'
                        for x in chunk)
        nxt = f'<a href="/p/{p + 1}.html">next</a>' if p + 1 < n_pages else ""
        pages["/" if p == 0 else f"/p/{p}.html"] = Page(
            f"<html><head><title>{p}</title></head><body>{links}{nxt}</body></html>")
    pages.update({path: Page(body, content_type=ct) for path, (body, ct) in files.items()})
    return Site("docs", "documents", pages)


def stage_times(files: dict[str, tuple[bytes, str]], rounds: int) -> None:
    policy = Policy(token="BenchBot", user_agent="BenchBot/1.0 (+https://example.org/bot)")
    per_kind: dict[str, list[float]] = {"pdf": [], "image": []}
    denied = {"pdf": 0, "image": 0}
    for r in range(rounds):
        for path, (body, ct) in files.items():
            kind = "pdf" if path.endswith(".pdf") else "image"
            t0 = time.perf_counter()
            found = merge_embedded([read(body, ct) for _, read in EMBEDDED_READERS])
            verdict = policy.at_embedded("http://x.test" + path, found, content_type=ct)
            per_kind[kind].append(time.perf_counter() - t0)
            if r == 0:
                denied[kind] += verdict.denied
    for kind, times in per_kind.items():
        n = len(times) // rounds
        sizes = [len(b) for p, (b, _) in files.items()
                 if (p.endswith(".pdf")) == (kind == "pdf")]
        print(f"document stage, {kind + 's':6}: {n} files (median "
              f"{statistics.median(sizes) / 1024:.0f} KiB), {len(times) / sum(times):9.0f} "
              "files/s of reader+policy time, median "
              f"{1e6 * statistics.median(times):.0f} us/file, p99 "
              f"{1e6 * sorted(times)[int(0.99 * len(times))]:.0f} us; refused {denied[kind]}")
    pdfs = [b for p, (b, _) in files.items() if p.endswith(".pdf")]
    t0 = time.perf_counter()
    for body in pdfs:
        pdf_text(body)
    took = time.perf_counter() - t0
    print(f"pypdf text extraction (spider, collected PDFs): {len(pdfs) / took:.0f} PDFs/s, "
          f"{1000 * took / len(pdfs):.2f} ms/PDF")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pdfs", type=int, default=200)
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    t0 = time.perf_counter()
    files = make_files(args.pdfs, args.images)
    total = sum(len(b) for b, _ in files.values())
    print(f"generated {len(files)} files, {total / 2**20:.1f} MiB, in "
          f"{time.perf_counter() - t0:.1f} s")
    stage_times(files, args.rounds)
    with LocalWeb([make_site(files)]) as web, tempfile.TemporaryDirectory() as d:
        seed = web.origin("docs") + "/"
        for r in range(args.rounds):
            tmp = Path(d) / f"run-{r}"
            tmp.mkdir()
            st, wall = run_polite(seed, tmp, collect=["html", "pdf", "image"])
            elapsed = st.get("elapsed_time_seconds") or wall
            # pages and files decided (a refused response never reaches response_received)
            refused = sum(v for k, v in st.items() if k.startswith("polite/decision/deny/"))
            responses = st.get("item_scraped_count", 0) + refused
            print(f"crawl {r}: {responses} pages and files decided in {elapsed:.2f} s: "
                  f"{responses / elapsed:.1f} pages/s end to end "
                  f"(concurrency {SETTINGS['CONCURRENT_REQUESTS']}); items "
                  f"{st.get('item_scraped_count', 0)} (pdf "
                  f"{st.get('polite/collected/pdf', 0)}, image "
                  f"{st.get('polite/collected/image', 0)}); refused at the document stage "
                  f"{st.get('polite/decision/deny/tdmrep', 0)} tdmrep, "
                  f"{st.get('polite/decision/deny/iptc', 0)} iptc", flush=True)


if __name__ == "__main__":
    main()
