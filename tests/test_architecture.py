"""The tree is the architecture: which folder may import what, and no import cycles.

Folders are read from the tree, not from a hand-kept list: every folder under ``crawler/``
that is not Scrapy glue is a pure layer, so a new pure module is covered as soon as it exists.
README "Layout" says what lives where.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "crawler"

#: The only places that may import Scrapy or Twisted (folders, and top-level modules by name).
GLUE = {"crawl", "cluster", "spiders", "cli", "demo", "addon", "settings", "__main__"}
ENGINES = {"scrapy", "twisted", "scrapy_redis"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def area(module: str) -> str:
    """The folder (or top-level module) a module belongs to: crawler.policy.scope -> policy."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skip


def imports_of(module: str) -> list[str]:
    """Every module ``module`` imports, at module level or inside a function (not under
    ``if TYPE_CHECKING``), resolved to module names (``from crawler.x import y`` is
    ``crawler.x.y`` when ``y`` is a module)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_nodes(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                out.append(sub if sub in MODULES else target)
    return out


def test_the_tree_has_the_documented_folders():
    folders = {p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert {"optout", "policy", "audit", "registry", "survey", "corpus", "identity", "config",
            "publish", "crawl", "cluster", "spiders", "cli", "demo"} <= folders


@pytest.mark.parametrize("module", [m for m in MODULES if area(m) not in GLUE])
def test_pure_layers_import_no_scrapy_twisted_or_glue(module):
    for name in imports_of(module):
        assert name.split(".")[0] not in ENGINES, f"{module} imports {name}"
        if name.startswith("crawler."):
            assert area(name) not in GLUE, f"{module} (pure) imports the glue module {name}"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def import_graph() -> dict[str, set[str]]:
    return {m: {n for n in imports_of(m) if n in MODULES and n != m} for m in MODULES}


def test_no_import_cycles():
    assert _cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("module", [m for m in MODULES if area(m) == "crawl"])
def test_the_single_process_glue_does_not_import_the_cluster(module):
    # the cluster's variants come in by class-path settings (POLITE_SITECACHE_CLASS, ...) that
    # a worker's settings name, not by imports or if-cluster branches in crawl/
    for name in imports_of(module):
        assert area(name) != "cluster", f"{module} imports {name}"
