"""Opt-out registries: the SQLite store, for lists too big to load per crawl.

:func:`import_list` builds a database from a text list (atomically replacing an old one);
:class:`SqliteRegistry` answers the :class:`~crawler.registry.index.RegistryIndex` lookups over
it, one read-only connection shared by threads under a lock; :func:`open_registry` opens a file
as either, by its content.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from crawler.registry.entries import Problems, RegistryEntry, file_lines, iter_entries, split_url
from crawler.registry.index import RegistryIndex, common_prefix_length

__all__ = ["RegistryFormatError", "SqliteRegistry", "import_list", "open_registry"]


class RegistryFormatError(ValueError):
    """A file given as a registry database is not one (or not a version this code reads)."""


_SQLITE_MAGIC = b"SQLite format 3\x00"
_DB_FORMAT = "polite-crawler-registry"
_DB_VERSION = "1"
#: ``PRAGMA application_id`` of registry databases ("PCRg").
_DB_APPLICATION_ID = 0x50435267
_KIND_CODES = {"domain": 1, "origin": 2, "prefix": 3}
_CODE_KINDS = {code: kind for kind, code in _KIND_CODES.items()}
#: URLs per query of :meth:`SqliteRegistry.lookup_many` (each adds one compound SELECT term,
#: and SQLite allows 500 terms and 32766 parameters since 3.32).
_SQL_BATCH = 100

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE entries (
    kind INTEGER NOT NULL,   -- 1 domain, 2 origin, 3 prefix
    value TEXT NOT NULL,     -- normalised; ASCII, so BINARY order is Python's str order
    raw TEXT,                -- as written, NULL when equal to value
    line INTEGER             -- 1-based line in the list
);
CREATE TABLE problems (message TEXT NOT NULL);
"""


def _is_sqlite_file(path: str | os.PathLike[str]) -> bool:
    with open(path, "rb") as f:
        return f.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC


class SqliteRegistry:
    """The :class:`RegistryIndex` lookups over a database built by :func:`import_list`.

    The file is opened read-only (``mode=ro``); one connection, guarded by a lock, so an
    instance can be shared by the threads of a server.  Raises :class:`RegistryFormatError`
    when the file is not a registry database.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not _is_sqlite_file(self.path):
            raise RegistryFormatError(
                f"{self.path}: not an SQLite registry database (build one from a text list "
                f"with `polite-crawl registry import LIST DB`)")
        uri = self.path.resolve().as_uri() + "?mode=ro"
        self._lock = threading.Lock()
        self._con = sqlite3.connect(uri, uri=True, check_same_thread=False,
                                    cached_statements=256)
        try:
            self._con.execute("PRAGMA mmap_size = 268435456")  # reads without a syscall each
            app_id = self._con.execute("PRAGMA application_id").fetchone()[0]
            meta = {}
            if app_id == _DB_APPLICATION_ID:
                meta = dict(self._con.execute("SELECT key, value FROM meta").fetchall())
            if meta.get("format") != _DB_FORMAT:
                raise RegistryFormatError(f"{self.path}: an SQLite file, but not a registry "
                                          f"database built by `polite-crawl registry import`")
            if meta.get("version") != _DB_VERSION:
                raise RegistryFormatError(f"{self.path}: registry database version "
                                          f"{meta.get('version')!r}; this code reads version "
                                          f"{_DB_VERSION} (re-import the list)")
            self._count = int(meta["entries"])
            self._has_prefixes = int(meta.get("prefixes", "1")) > 0
        except sqlite3.DatabaseError as exc:
            self._con.close()
            raise RegistryFormatError(f"{self.path}: not a readable registry database "
                                      f"({exc})") from None
        except BaseException:
            self._con.close()
            raise
        self.meta: dict[str, str] = meta

    @property
    def problems(self) -> tuple[str, ...]:
        """The problems found in the list when the database was built."""
        with self._lock:
            rows = self._con.execute("SELECT message FROM problems ORDER BY rowid").fetchall()
        return tuple(r[0] for r in rows)

    @staticmethod
    def _row_entry(row: tuple[int, str, str | None, int | None]) -> RegistryEntry:
        kind, value, raw, line = row
        return RegistryEntry(_CODE_KINDS[kind], value, value if raw is None else raw, line)

    def _prefix(self, low: str, s: str) -> RegistryEntry | None:
        """Longest prefix entry that ``s`` starts with, among those >= ``low`` (the origin and
        "/"): one query per step of :func:`_longest_prefix`."""
        while len(s) >= len(low):
            row = self._con.execute(
                "SELECT kind, value, raw, line FROM entries WHERE kind = 3 AND value <= ? "
                "AND value >= ? ORDER BY value DESC LIMIT 1", (s, low)).fetchone()
            if row is None:
                return None
            if s.startswith(row[1]):
                return self._row_entry(row)
            s = s[:common_prefix_length(row[1], s)]
        return None

    def _lookup_batch(self, batch: Sequence[tuple[str, str, bool, str]],
                      ) -> list[RegistryEntry | None]:
        """Answers for split URLs, in one compound query (plus rare extra prefix steps).

        Per URL, the greatest prefix entry <= the URL within its origin; then every origin and
        domain candidate of the batch by exact (kind, value).
        """
        selects: list[str] = []
        params: list[str] = []
        wanted_domains: dict[str, None] = {}
        wanted_origins: dict[str, None] = {}
        candidates = []
        for i, (origin, host, is_ip, pq) in enumerate(batch):
            if self._has_prefixes:
                selects.append(f"SELECT {i}, * FROM (SELECT kind, value, raw, line FROM entries "
                               f"WHERE kind = 3 AND value <= ? AND value >= ? "
                               f"ORDER BY value DESC LIMIT 1)")
                params += (origin + pq, origin + "/")
            wanted_origins[origin] = None
            domains = [host]
            if not is_ip:
                h = host
                while (dot := h.find(".")) >= 0:
                    h = h[dot + 1:]
                    domains.append(h)
            wanted_domains.update(dict.fromkeys(domains))
            candidates.append(domains)
        for kind, values in ((2, wanted_origins), (1, wanted_domains)):
            marks = ",".join("?" * len(values))
            selects.append(f"SELECT -1, kind, value, raw, line FROM entries "
                           f"WHERE kind = {kind} AND value IN ({marks})")
            params += values
        prefix_rows: dict[int, tuple[Any, ...]] = {}
        found: dict[tuple[int, str], tuple[Any, ...]] = {}
        for row in self._con.execute(" UNION ALL ".join(selects), params):
            if row[0] >= 0:
                prefix_rows[row[0]] = row[1:]
            else:
                found[row[1], row[2]] = row[1:]
        out: list[RegistryEntry | None] = []
        for i, (origin, _host, _is_ip, pq) in enumerate(batch):
            entry = None
            row = prefix_rows.get(i)
            if row is not None:
                s = origin + pq
                if s.startswith(row[1]):
                    entry = self._row_entry(row)
                else:
                    entry = self._prefix(origin + "/", s[:common_prefix_length(row[1], s)])
            if entry is None:
                exact = found.get((2, origin))
                if exact is None:
                    for domain in candidates[i]:  # longest first
                        exact = found.get((1, domain))
                        if exact is not None:
                            break
                if exact is not None:
                    entry = self._row_entry(exact)
            out.append(entry)
        return out

    def lookup(self, url: str) -> RegistryEntry | None:
        """The most specific entry covering ``url``, or None (also for a URL that is invalid)."""
        try:
            split = split_url(url)
        except ValueError:
            return None
        with self._lock:
            return self._lookup_batch([split])[0]

    def lookup_many(self, urls: Iterable[str]) -> dict[str, RegistryEntry | None]:
        """:meth:`lookup` for each URL, asked :data:`_SQL_BATCH` URLs per query."""
        out: dict[str, RegistryEntry | None] = {}
        todo: list[tuple[str, tuple[str, str, bool, str]]] = []
        for url in urls:
            if url in out:
                continue
            out[url] = None
            try:
                todo.append((url, split_url(url)))
            except ValueError:
                pass
        for i in range(0, len(todo), _SQL_BATCH):
            chunk = todo[i:i + _SQL_BATCH]
            with self._lock:
                answers = self._lookup_batch([split for _url, split in chunk])
            for (url, _split), entry in zip(chunk, answers, strict=True):
                out[url] = entry
        return out

    def __len__(self) -> int:
        return self._count

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def __enter__(self) -> SqliteRegistry:  # noqa: PYI034 - py3.10 has no typing.Self
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SqliteRegistry {self.path} {self._count} entries>"


def import_list(list_path: str | os.PathLike[str],
                db_path: str | os.PathLike[str]) -> tuple[int, tuple[str, ...]]:
    """Build (or atomically replace) a registry database from a text list.

    The database is written to a temporary file beside ``db_path`` and moved over it with
    ``os.replace`` only when complete, so readers see the old or the new database, never a
    half-built one.  Returns (entries in the database, problems of the list).
    """
    db_path = Path(db_path)
    problems = Problems()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{db_path.name}.", suffix=".tmp",
                                    dir=db_path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        con = sqlite3.connect(tmp, isolation_level=None)
        try:
            con.executescript(
                f"PRAGMA application_id = {_DB_APPLICATION_ID};"
                "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;"
                "PRAGMA cache_size = -131072; PRAGMA temp_store = MEMORY;" + _SCHEMA)
            con.execute("BEGIN")
            with open(list_path, "rb") as f:
                con.executemany(
                    "INSERT INTO entries (kind, value, raw, line) VALUES (?, ?, ?, ?)",
                    ((_KIND_CODES[e.kind], e.value, None if e.raw == e.value else e.raw, e.line)
                     for e in iter_entries(file_lines(f), problems)))
            # Not a UNIQUE index: with journal_mode=OFF a failed CREATE cannot be rolled back.
            con.execute("CREATE INDEX entries_kind_value ON entries (kind, value)")
            if con.execute("SELECT 1 FROM entries GROUP BY kind, value HAVING COUNT(*) > 1 "
                           "LIMIT 1").fetchone():  # the same value twice: keep the first line
                con.execute("DELETE FROM entries WHERE rowid NOT IN "
                            "(SELECT MIN(rowid) FROM entries GROUP BY kind, value)")
            count = con.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
            n_prefixes = con.execute("SELECT COUNT(*) FROM entries WHERE kind = 3").fetchone()[0]
            result = problems.result()
            con.executemany("INSERT INTO problems (message) VALUES (?)", ((p,) for p in result))
            con.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", [
                ("format", _DB_FORMAT), ("version", _DB_VERSION), ("entries", str(count)),
                ("prefixes", str(n_prefixes)), ("source", os.fspath(list_path))])
            con.execute("COMMIT")
        finally:
            con.close()
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a registry is not a secret
        os.replace(tmp, db_path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return count, result


def open_registry(path: str | os.PathLike[str]) -> RegistryIndex | SqliteRegistry:
    """Open a registry by content: an SQLite database, else a text list (see ``.problems``)."""
    if _is_sqlite_file(path):
        return SqliteRegistry(path)
    return RegistryIndex.from_file(path)[0]
