"""``python -m tests.crash_cli POINT ARGS...``: the polite-crawl CLI (``ARGS``) with one crash
point armed: the process dies (exit 137, nothing flushed, as ``kill -9`` or a power cut would
leave it) when :mod:`crawler.corpus.revalidate` passes the crash point named ``POINT``.

The test-only way into ``crawler.corpus.revalidate._crash_hook`` (the product reads no
environment variable for it); run from the repository root.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from crawler.cli.main import main
from crawler.corpus import revalidate


def kill_at(point: str) -> Callable[[str], None]:
    """A crash hook that ends the process at ``point``."""

    def hook(name: str) -> None:
        if name == point:
            os._exit(137)

    return hook


if __name__ == "__main__":
    revalidate._crash_hook = kill_at(sys.argv[1])
    raise SystemExit(main(sys.argv[2:]))
