"""One run per output_dir: an exclusive ``flock`` on ``<audit file>.lock``.

The lock is held for the whole crawl and released by the kernel when the process ends, however
it ends (``kill -9`` included), so a dead run never leaves a stale lock. The file itself stays
(removing it would let two runs lock two different files of the same name); it holds the
holder's PID and start time, written after the lock is taken, so a refused run can name them.

A cluster worker's audit file is ``audit-<worker>.jsonl``: workers sharing an output_dir each
lock their own file.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


class RunLockError(Exception):
    """Another run holds the lock; ``str()`` is one line naming it (PID, start time)."""

    def __init__(self, message: str, holder: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.holder = holder or {}


def lock_path(audit_path: str | os.PathLike[str]) -> Path:
    return Path(f"{os.fspath(audit_path)}.lock")


class RunLock:
    """``RunLock(audit_path).acquire()`` ... ``release()``; also a context manager."""

    def __init__(self, audit_path: str | os.PathLike[str]) -> None:
        self.audit_path = Path(audit_path)
        self.path = lock_path(audit_path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        if self._fd is not None:
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = self.holder()
            raise RunLockError(self._busy_message(holder), holder) from None
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
        data = (json.dumps(info, sort_keys=True) + "\n").encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        self._fd = fd
        return self

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.ftruncate(fd, 0)  # no holder any more (the file stays: see the module doc)
            except OSError:
                pass
            os.close(fd)  # releases the flock

    def holder(self, wait: float = 0.5) -> dict[str, Any] | None:
        """What the holder wrote (it writes just after locking: wait briefly for it)."""
        deadline = time.monotonic() + wait
        while True:
            try:
                info = json.loads(self.path.read_text(encoding="utf-8"))
                if isinstance(info, dict) and "pid" in info:
                    return info
            except (OSError, ValueError):
                pass
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)

    def _busy_message(self, holder: dict[str, Any] | None) -> str:
        where = self.audit_path.parent
        if holder:
            who = f"PID {holder.get('pid')}"
            if holder.get("host") and holder.get("host") != socket.gethostname():
                who += f" on {holder['host']}"
            who += f", started {holder.get('started_at', '?')}"
        else:
            who = "a process that has not yet written its PID"
        return (f"another run is using {where} ({who}; lock {self.path}): one run per "
                f"output_dir; wait for it to end or stop it")

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
