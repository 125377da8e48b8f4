"""One writer at a time per data folder: an ``fcntl`` lock on a file inside it.

Two ingests writing the same embedded Chroma folder (and the indexes derived from it) at
once can interleave deletes and adds; serialising them is simpler than making every write
commutative. The kernel drops the lock when its holder exits, even on ``kill -9``, so a
crash never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

LOCK_NAME = "ingest.lock"


class LockTimeout(RuntimeError):
    """Another writer held the data folder for longer than we were willing to wait."""


class WriteLock:
    """Exclusive lock on ``data_dir/ingest.lock``; waits up to ``timeout`` seconds.

    ``on_wait`` is called once, with the holder's description, if the lock is busy, so the
    caller can tell the user why nothing happens yet.
    """

    def __init__(self, data_dir: Path, timeout: float,
                 on_wait: Callable[[str], None] | None = None, poll: float = 0.2,
                 name: str = LOCK_NAME) -> None:
        """``name``: the lock file; another name is another lock (e.g. who embeds)."""
        self.path = data_dir / name
        self.timeout = timeout
        self.on_wait = on_wait
        self.poll = poll
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _holder(fd)
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise LockTimeout(
                        f"another ingest ({holder}) is writing to {self.path.parent}; waited "
                        f"{self.timeout:g} s. Try again when it has finished, or raise "
                        "RAG_LOCK_TIMEOUT to wait longer") from None
                if not told and self.on_wait is not None:
                    self.on_wait(f"another ingest ({holder}) is writing to "
                                 f"{self.path.parent}; waiting up to {self.timeout:g} s for it")
                    told = True
                time.sleep(self.poll)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> WriteLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def _holder(fd: int) -> str:
    """Who holds the lock, as written into the lock file by the holder."""
    try:
        text = os.pread(fd, 64, 0).decode("ascii", errors="replace").strip()
    except OSError:
        text = ""
    return text or "another process"
