"""Uploaded files: safe names, private folders that never outlive their server, a multipart
reader that stops at the size limits, and the chat's record of which browser uploaded what.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import threading
import time
import unicodedata
from collections.abc import AsyncGenerator
from pathlib import Path

from starlette.datastructures import FormData, Headers
from starlette.formparsers import MultiPartParser

log = logging.getLogger(__name__)

UPLOAD_PREFIX = "rag-upload-"
_NAME_BYTES = 150  # well under the 255-byte limit of common file systems
_SEPARATORS = re.compile(r"[\s_]+")


def safe_filename(name: str) -> str:
    """The base name of an uploaded file, harmless on disk and on screen.

    Letters and digits of every script are kept (东京.txt stays 东京.txt, so two uploads in
    other scripts never collide); path parts, control and format characters (NUL, bidi
    overrides) and leading dots are not.
    """
    base = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    kept = "".join(ch if _harmless(ch) else "_" for ch in base)
    kept = _SEPARATORS.sub(lambda m: " " if m.group().isspace() else "_", kept)
    kept = kept.strip(" ._") or "upload"
    stem, dot, suffix = kept.rpartition(".")
    if not dot or len(suffix) > 10:
        stem, suffix = kept, ""
    while len(f"{stem}.{suffix}".encode()) > _NAME_BYTES and stem:
        stem = stem[:-1]
    return f"{stem}.{suffix}" if suffix else stem or "upload"


def _harmless(ch: str) -> bool:
    kind = unicodedata.category(ch)
    return kind[0] in "LNM" or ch in " .-_()[]+,'&" or kind == "Zs"


class UploadTooLarge(Exception):
    """One file of an upload is over the per-file limit; nothing more is read."""

    def __init__(self, name: str, limit: int) -> None:
        super().__init__(f"{name}: over the {limit / 1e6:.1f} MB per-file limit "
                         "(RAG_MAX_FILE_MB)")


class _LimitedParser(MultiPartParser):
    """Starlette's multipart parser that stops as soon as one file passes ``max_file_bytes``
    (Starlette limits only plain fields): an oversized file is never spooled whole."""

    def __init__(self, headers: Headers, stream: AsyncGenerator[bytes, None], *,
                 max_files: int, max_file_bytes: int) -> None:
        super().__init__(headers, stream, max_files=max_files, max_fields=10)
        self._max_file_bytes = max_file_bytes
        self._part_bytes = 0

    def on_part_begin(self) -> None:
        super().on_part_begin()
        self._part_bytes = 0

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self._current_part
        if part.file is not None:
            self._part_bytes += end - start
            if self._part_bytes > self._max_file_bytes:
                raise UploadTooLarge(safe_filename(part.file.filename or "upload"),
                                     self._max_file_bytes)
        super().on_part_data(data, start, end)


async def read_multipart(headers: Headers, stream: AsyncGenerator[bytes, None], *,
                         max_files: int, max_file_bytes: int) -> FormData:
    """The form of a multipart request; raises UploadTooLarge at the first oversized file."""
    return await _LimitedParser(headers, stream, max_files=max_files,
                                max_file_bytes=max_file_bytes).parse()


def upload_folder() -> Path:
    """A new private folder for one request's files, named after this process so a folder
    left by a killed server is recognised and removed at the next start."""
    return Path(tempfile.mkdtemp(prefix=f"{UPLOAD_PREFIX}{os.getpid()}-"))


def remove_stale_upload_folders(temp_dir: Path | None = None) -> int:
    """Delete upload folders of server processes that no longer run; returns how many."""
    removed = 0
    for folder in Path(temp_dir or tempfile.gettempdir()).glob(f"{UPLOAD_PREFIX}*"):
        pid = folder.name[len(UPLOAD_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and (int(pid) == os.getpid() or _alive(int(pid))):
            continue
        if not pid.isdigit() and time.time() - folder.stat().st_mtime < 3600:
            continue  # an older server's folder without a pid: only once it is an hour old
        shutil.rmtree(folder, ignore_errors=True)
        removed += 1
    if removed:
        log.info("removed %d upload folder(s) left by stopped servers", removed)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class UploadRegistry:
    """Which files each browser uploaded through the chat, so the chat ingests only those.

    Gradio accepts any path a client names in a file value; a browser is recognised by a
    random cookie set when it uploads, and a path is handed out once (claimed), then
    forgotten.
    """

    COOKIE = "rag_uploader"

    def __init__(self, ttl: float = 6 * 3600) -> None:
        self._paths: dict[str, dict[str, float]] = {}
        self._ttl = ttl
        self._lock = threading.Lock()

    def record(self, client: str, paths: list[str]) -> None:
        now = time.monotonic()
        with self._lock:
            self._expire(now)
            mine = self._paths.setdefault(client, {})
            mine.update((os.path.realpath(p), now) for p in paths)

    def claim(self, client: str | None, path: str) -> bool:
        """True (once) when ``client`` uploaded ``path``."""
        if not client:
            return False
        with self._lock:
            return self._paths.get(client, {}).pop(os.path.realpath(path), None) is not None

    def _expire(self, now: float) -> None:
        for client in list(self._paths):
            mine = self._paths[client]
            for path in [p for p, t in mine.items() if now - t > self._ttl]:
                del mine[path]
            if not mine:
                del self._paths[client]
