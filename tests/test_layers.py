"""The sans-IO core imports neither Scrapy nor Twisted, opens nothing and reads no clock."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "crawler"
#: Folders, not a hand-kept list: a new module in one of them is covered as soon as it exists.
CORE = sorted(PKG.glob("optout/*.py")) + sorted(PKG.glob("policy/*.py")) + [
    PKG / "audit" / "record.py"]
FORBIDDEN_MODULES = {"scrapy", "twisted", "socket", "time", "datetime", "os", "urllib.request",
                     "http", "asyncio", "subprocess", "pathlib", "random"}
FORBIDDEN_CALLS = {"open", "input", "print"}


#: Modules that read local files (survey --from-dir) but must touch no network or Scrapy.
NO_NETWORK = sorted(PKG.glob("survey/*.py")) + sorted(PKG.glob("corpus/*.py"))
NETWORK_MODULES = {"scrapy", "twisted", "socket", "http", "asyncio", "requests", "subprocess"}


def imports(tree: ast.AST):
    """(node, module name) for every absolute import in a module."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node, node.module


@pytest.mark.parametrize("path", NO_NETWORK, ids=lambda p: str(p.relative_to(PKG)))
def test_survey_modules_do_no_network_io(path):
    for node, name in imports(ast.parse(path.read_text(encoding="utf-8"))):
        if name == "http" and isinstance(node, ast.ImportFrom) and \
                {a.name for a in node.names} == {"HTTPStatus"}:
            continue  # the status code enum (reason phrases), no client or server
        assert name.split(".")[0] not in NETWORK_MODULES, f"{path.name} imports {name}"
        assert name != "urllib.request", f"{path.name} imports {name}"


@pytest.mark.parametrize("path", CORE, ids=lambda p: str(p.relative_to(PKG)))
def test_core_module_is_sans_io(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for _, name in imports(tree):
        assert name.split(".")[0] not in FORBIDDEN_MODULES and name not in FORBIDDEN_MODULES, (
            f"{path.name} imports {name}")
        if name.startswith("crawler."):
            assert name.startswith(("crawler.optout", "crawler.audit.record", "crawler.extras",
                                    "crawler.policy")), f"{path.name} imports {name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in FORBIDDEN_CALLS, f"{path.name} calls {node.func.id}()"


def test_importing_the_core_loads_no_scrapy_or_twisted():
    mods = [f"crawler.{p.parent.name}.{p.stem}" for p in CORE + NO_NETWORK
            if p.stem != "__init__"]
    code = ("import sys\n" + "".join(f"import {m}\n" for m in mods) +
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('scrapy', 'twisted'))\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)
