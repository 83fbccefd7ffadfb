"""The sans-IO core imports neither Scrapy nor Twisted, opens nothing and reads no clock."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "crawler"
CORE = sorted(PKG.glob("optout/*.py")) + [PKG / "audit" / "record.py", PKG / "policy.py",
                                           PKG / "network.py"]
FORBIDDEN_MODULES = {"scrapy", "twisted", "socket", "time", "datetime", "os", "urllib.request",
                     "http", "asyncio", "subprocess", "pathlib", "random"}
FORBIDDEN_CALLS = {"open", "input", "print"}


@pytest.mark.parametrize("path", CORE, ids=lambda p: str(p.relative_to(PKG)))
def test_core_module_is_sans_io(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            assert name.split(".")[0] not in FORBIDDEN_MODULES and name not in FORBIDDEN_MODULES, (
                f"{path.name} imports {name}")
            if name.startswith("crawler."):
                assert name.startswith(("crawler.optout", "crawler.audit.record",
                                        "crawler.network")), f"{path.name} imports {name}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in FORBIDDEN_CALLS, f"{path.name} calls {node.func.id}()"


def test_importing_the_core_loads_no_scrapy_or_twisted():
    mods = ["crawler.optout." + p.stem for p in CORE if p.parent.name == "optout"]
    mods += ["crawler.audit.record", "crawler.policy", "crawler.network"]
    code = ("import sys\n" + "".join(f"import {m}\n" for m in mods) +
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('scrapy', 'twisted'))\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)
