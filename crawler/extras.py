"""Optional parts of the package (``pip install 'polite-crawler[EXTRA]'``) and the one-line
error a command gives when the part it needs is not installed.

The base package crawls (``run``, ``check``, ``audit``, ``revalidate``, ``export`` to JSONL).
What needs more is an *extra*:

========== ===================================== ===========================================
extra      installs                              needed by
========== ===================================== ===========================================
report     matplotlib                            ``report`` (its charts; not ``--transparency``)
cluster    redis, scrapy-redis                   ``cluster:`` jobs, ``seed``, ``run --worker``
documents  pypdf, c2pa-python                    ``collect: [pdf]``, C2PA in collected files
parquet    pyarrow                               ``export --format parquet``
all        every extra above
========== ===================================== ===========================================

Sans-IO: no Scrapy import; :func:`require` imports the module it is asked for and nothing else.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["ENABLES", "EXTRAS", "MissingExtra", "extras_table_markdown", "require"]

#: extra -> the distributions it installs (kept in step with pyproject.toml by a test)
EXTRAS: dict[str, tuple[str, ...]] = {
    "report": ("matplotlib",),
    "cluster": ("redis", "scrapy-redis"),
    "documents": ("pypdf", "c2pa-python"),
    "parquet": ("pyarrow",),
}

#: extra -> what it enables (the README's install table, :func:`extras_table_markdown`)
ENABLES: dict[str, str] = {
    "report": "`polite-crawl report`: tables and PNG charts of surveys and audit logs "
              "(`report --transparency` needs no extra)",
    "cluster": "cluster mode on Redis: a job with `cluster:`, `run --worker`, `seed`",
    "documents": "`collect: [pdf]` and the C2PA manifests of collected files",
    "parquet": "`polite-crawl export --format parquet`",
}


def extras_table_markdown() -> str:
    """:data:`EXTRAS` and :data:`ENABLES` as the README's install table."""
    lines = ["| extra | installs | enables |", "|---|---|---|"]
    lines += [f"| `{extra}` | {', '.join(dists)} | {ENABLES[extra]} |"
              for extra, dists in EXTRAS.items()]
    lines.append("| `all` | every extra above | everything |")
    return "\n".join(lines)


class MissingExtra(ImportError):
    """A part of the package that is not installed; ``str()`` is the one line to show."""

    def __init__(self, extra: str, what: str, module: str) -> None:
        self.extra, self.what, self.module = extra, what, module
        super().__init__(
            f"{what} needs the [{extra}] extra ({module} is not installed):"
            f" pip install 'polite-crawler[{extra}]'")


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module``; when it is not installed, raise :class:`MissingExtra` saying that
    ``what`` (e.g. ``"polite-crawl report"``) needs ``extra``. An import error from inside an
    installed module is not hidden."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}")
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        top = module.split(".")[0]
        if exc.name is not None and exc.name.split(".")[0] == top:
            raise MissingExtra(extra, what, top) from None
        raise
