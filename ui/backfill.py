"""`rag serve` embeds pending passages in the background (the second stage of ingest).

Uploads return once their articles are stored and searchable by their words; this thread
then embeds the pending passages of every collection, batch by batch, holding the data
folder's write lock only while a batch is moved (milliseconds), so uploads and removals are
never held up for long. One process per data folder embeds at a time (``embed.lock``): two
servers sharing a folder do not embed the same passages twice; the other one picks up when
the first stops. It also finishes what `rag ingest --no-wait` or a killed ingest left.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from index.backfill import embed_pending
from index.lock import LockTimeout
from ui.wiring import embed_lease, write_lock

if TYPE_CHECKING:
    from ui.service import ArticleService

log = logging.getLogger(__name__)

class BackgroundEmbedder:
    """Looks for pending passages every ``poll`` seconds, and at once after ``wake()``."""

    def __init__(self, service: ArticleService, poll: float = 5.0) -> None:
        self.service = service
        self.poll = poll
        self.busy = False  # embedding right now (health shows it)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rag-embedder", daemon=True)

    def start(self) -> BackgroundEmbedder:
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the batch under way (if any) and wait for it: a thread left inside the
        model or the store while the process exits can crash the exit."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            if self.busy:
                log.info("stopping: finishing the embedding batch under way; the passages "
                         "still waiting are embedded when the server starts again")
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll)
            self._wake.clear()
            try:
                self.run_once()
            except Exception:  # a store that is down now may be back later
                log.exception("background embedding failed; trying again later")

    def run_once(self) -> int:
        """Embed every collection's pending passages, if no other process of this data
        folder is doing it; returns how many got their vector."""
        settings = self.service.settings
        if self.service.write_problem() is not None:
            # A full disk: nothing can be stored, and Chroma calls from this thread beside a
            # request's, after a failed compaction, were seen to hang both.
            return 0
        lease = embed_lease(settings, timeout=0)
        try:
            lease.acquire()
        except LockTimeout:
            return 0  # another server of this folder embeds; we look again later
        moved = 0
        try:
            for name in self.service.collections():
                parts = self.service.components(name)
                if parts.store.pending_count() == 0:
                    continue
                self.busy = True
                result = embed_pending(parts.store, parts.embedder, stop=self._stop,
                                       lock=lambda: write_lock(settings))
                moved += result.moved
                log.info("embedded %d pending passages of %r", result.moved, name)
        finally:
            self.busy = False
            lease.release()
        return moved
