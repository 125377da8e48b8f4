"""`rag serve` refreshes the followed feeds on an interval (RAG_FEED_INTERVAL_MINUTES).

A timer thread only queues a refresh job: the fetching runs on a fetcher thread and the
writing on the writer, so questions never wait for it. A refresh still under way when the
next one is due is not queued twice.
"""

from __future__ import annotations

import logging
import threading

from ui.jobs import Job, QueueFull
from ui.service import ArticleService

log = logging.getLogger(__name__)


class FeedScheduler:
    """Queues ``service.submit_feed_refresh()`` every ``interval`` seconds while feeds are
    followed; ``stop()`` ends it."""

    def __init__(self, service: ArticleService, interval: float) -> None:
        self.service = service
        self.interval = interval
        self.last: Job | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rag-feeds", daemon=True)

    def start(self) -> FeedScheduler:
        self._thread.start()
        log.info("feeds are refreshed every %g minutes", self.interval / 60)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick()
            except Exception:  # a broken feed list must not end the timer for good
                log.exception("feed refresh could not be queued")

    def tick(self) -> Job | None:
        """Queue one refresh unless none is needed or the last one is still going."""
        if self.last is not None and not self.last.finished:
            return None
        if not self.service.feeds():
            return None
        try:
            self.last = self.service.submit_feed_refresh()
        except QueueFull:
            log.info("feed refresh skipped: the write queue is full")
            return None
        return self.last
