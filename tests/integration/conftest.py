"""Integration helpers: run real crawls (a subprocess of `polite-crawl`) against a local web."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def write_config(path: Path, **cfg: Any) -> Path:
    base = {
        "job": "itest",
        "user_agent": "PoliteDemoBot/1.0 (+https://example.org/bot)",
        "purpose": "train-ai",
        "honor_agents": ["GPTBot"],
        "allow_private_networks": True,
        "output_dir": str(path.parent / "out"),
        "settings": {"DOWNLOAD_DELAY": 0, "AUTOTHROTTLE_ENABLED": False,
                     "POLITE_SITE_RETRY_BACKOFF": 0.3, "LOG_LEVEL": "INFO",
                     "RETRY_TIMES": 1},
    }
    settings = {**base["settings"], **cfg.pop("settings", {})}
    base.update(cfg)
    base["settings"] = settings
    path.write_text(yaml.safe_dump(base), encoding="utf-8")
    return path


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "crawler", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT, env=env, check=False)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
