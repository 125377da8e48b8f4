"""Writes as jobs: uploads and removals wait in a bounded queue, not in request threads.

A write may wait minutes for the data folder's lock (another `rag ingest` holds it). A
request thread waiting that long is one fewer for questions: 45 waiting uploads once left
none and every query timed out. So a write is queued and done by one writer thread; the
client gets a job id at once (and may wait for it without holding a thread), and a full
queue answers "busy, retry later" instead of growing without bound.

A job may have a preparation that needs no lock but takes long (fetching URLs and feeds):
it runs on one of two fetcher threads first, so a slow web page never holds up the writer
and the uploads queued behind it; the job counts as waiting meanwhile.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

log = logging.getLogger(__name__)

JobStatus = Literal["queued", "running", "done", "failed"]


class QueueFull(RuntimeError):
    """Too many writes are waiting; the client should retry later."""


@dataclass
class Job:
    """One queued write and, once done, its result or its error."""

    id: str
    kind: str  # "ingest" or "remove"
    collection: str
    run: Callable[[Job], dict[str, Any]] = field(repr=False)
    cleanup: Callable[[], None] | None = field(default=None, repr=False)
    status: JobStatus = "queued"
    note: str = ""  # what it is waiting for, e.g. another writer holding the lock
    progress: tuple[int, int] = (0, 0)  # passages embedded, of total
    result: dict[str, Any] | None = None
    error: BaseException | None = None
    queued_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    _done: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has finished (True) or ``timeout`` passed (False)."""
        return self._done.wait(timeout)

    def finish(self, result: dict[str, Any] | None, error: BaseException | None) -> None:
        self.result, self.error = result, error
        self.status = "failed" if error is not None else "done"
        self.finished_at = time.time()
        self.note = ""
        self._done.set()


_STOP = Job("", "stop", "", lambda job: {})  # tells the writer thread to end


def _stopped() -> RuntimeError:
    """The error of a job the server never ran because it stopped first."""
    return RuntimeError("the server stopped before this job ran; send it again")


class WriteQueue:
    """At most ``capacity`` waiting jobs, done one at a time by one daemon thread.

    Finished jobs are remembered (the newest ``keep``) so their status can be asked for.
    """

    def __init__(self, capacity: int, keep: int = 1000) -> None:
        self.capacity = capacity
        self._queue: queue.Queue[Job] = queue.Queue()
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._keep = keep
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._preparing = 0
        self._closed = False
        # Two preparations at a time, on daemon threads: a server that stops does not wait
        # for a fetch to time out.
        self._fetch_slots = threading.BoundedSemaphore(2)

    def submit(self, kind: str, collection: str, run: Callable[[Job], dict[str, Any]],
               cleanup: Callable[[], None] | None = None,
               prepare: Callable[[Job], None] | None = None) -> Job:
        """Queue a write; raises QueueFull (after running ``cleanup``) when no room is left.
        ``prepare`` (if any) runs first on a fetcher thread, without the writer."""
        with self._lock:
            refusal = self._refusal()
            if refusal is not None:
                if cleanup is not None:
                    cleanup()
                raise QueueFull(refusal)
            job = Job(secrets.token_hex(16), kind, collection, run, cleanup)
            self._jobs[job.id] = job
            while len(self._jobs) > self._keep + self.capacity:
                oldest = next(iter(self._jobs.values()))
                if not oldest.finished:
                    break
                self._jobs.popitem(last=False)
            if prepare is None:
                self._enqueue(job)
            else:
                self._preparing += 1
                threading.Thread(target=self._prepare, args=(job, prepare), daemon=True,
                                 name="rag-fetch").start()
        return job

    def _refusal(self) -> str | None:
        """Why a new job is refused, or None (the caller holds ``_lock``)."""
        if self._closed:
            return "the server is stopping; try again once it is back"
        if self.waiting() >= self.capacity:
            return (f"{self.waiting()} writes are already waiting (the most RAG_WRITE_QUEUE "
                    "allows); try again shortly")
        return None

    def _enqueue(self, job: Job) -> None:
        """Hand a job to the writer (the caller holds ``_lock``)."""
        self._queue.put(job)
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="rag-writer",
                                            daemon=True)
            self._thread.start()

    def _prepare(self, job: Job, prepare: Callable[[Job], None]) -> None:
        try:
            with self._fetch_slots:
                prepare(job)
        except Exception as exc:  # a failed preparation fails its job, never the queue
            log.warning("%s job %s failed while preparing: %s", job.kind, job.id, exc)
            with self._lock:
                self._preparing -= 1
            self._end(job, None, exc)
            return
        with self._lock:
            self._preparing -= 1
            closed = self._closed
            if not closed:
                self._enqueue(job)
        if closed:
            self._end(job, None, _stopped())

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def waiting(self) -> int:
        """Jobs queued (or preparing) and not yet started."""
        return self._queue.qsize() + self._preparing

    def close(self, timeout: float = 30.0) -> None:
        """Refuse new jobs, fail the queued ones (their files removed) and wait for the one
        under way: a write cut off by the exit is safe on disk, but a thread left inside the
        store while the process exits can crash the exit."""
        with self._lock:
            self._closed = True
            thread = self._thread
            dropped: list[Job] = []
            while True:
                try:
                    dropped.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._queue.put(_STOP)
        for job in dropped:
            self._end(job, None, _stopped())
        if dropped:
            log.info("stopping: %d queued write(s) dropped (their clients are told to send "
                     "them again)", len(dropped))
        if thread is not None and thread.is_alive():
            with self._lock:
                running = [j for j in self._jobs.values() if j.status == "running"]
            if running:
                log.info("stopping: finishing the %s job under way (up to %g s)",
                         running[0].kind, timeout)
            thread.join(timeout)
            if thread.is_alive():
                log.warning("stopping: the %s job under way did not finish within %g s; "
                            "the store keeps what it wrote (upload it again to be sure)",
                            running[0].kind if running else "write", timeout)

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is _STOP:
                return
            job.status, job.started_at = "running", time.time()
            result: dict[str, Any] | None = None
            error: BaseException | None = None
            try:
                result = job.run(job)
            except Exception as exc:  # the job's error is its result; the writer goes on
                log.warning("%s job %s failed: %s", job.kind, job.id, exc)
                error = exc
            self._end(job, result, error)

    @staticmethod
    def _end(job: Job, result: dict[str, Any] | None, error: BaseException | None) -> None:
        if job.cleanup is not None:  # before finishing: a waiter sees the files gone
            try:
                job.cleanup()
            except OSError as exc:
                log.warning("cleanup after job %s failed: %s", job.id, exc)
        job.finish(result, error)
