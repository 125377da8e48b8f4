"""Pending passages get their vectors: embedded without the write lock, moved under it.

Used by `rag ingest` after it has stored its articles (its second stage) and by `rag serve`
in the background. Embedding takes seconds per batch and needs no lock; the move takes
milliseconds and holds the data folder's lock, so uploads and removals are never held up
for long, and a passage removed or replaced while it was being embedded is not moved
(:meth:`index.store.PassageStore.store_vectors`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np

from index.embedder import Embedder, Vectors
from index.pending import PendingPassage
from index.store import PassageStore

log = logging.getLogger(__name__)

LockFactory = Callable[[], AbstractContextManager[Any]]


@dataclass
class Backfill:
    """What one run of :func:`embed_pending` did."""

    moved: int = 0  # pending passages that got their vector
    embedded: int = 0  # texts run through the model (identical texts once, known ones never)


def embed_pending(store: PassageStore, embedder: Embedder, *, batch: int = 64,
                  lock: LockFactory = nullcontext,
                  progress: Callable[[int], None] | None = None,
                  stop: threading.Event | None = None) -> Backfill:
    """Embed the store's pending passages, batch by batch, until none is left that can be
    moved (passages of an article whose ingest was killed before its catalog record stay,
    for the re-run to replace). ``lock()`` is held while a batch is moved; ``stop`` ends the
    run between batches."""
    result = Backfill()
    skipped = 0  # not moved: they stay at the front of the pending collection
    while stop is None or not stop.is_set():
        items = store.pending_passages(batch, skipped)
        if not items:
            break
        vectors, embedded = _vectors(items, store, embedder)
        with lock():
            moved = store.store_vectors(items, vectors)
        result.moved += moved
        result.embedded += embedded
        skipped += len(items) - moved
        if progress is not None:
            progress(len(items))
    return result


def _vectors(items: list[PendingPassage], store: PassageStore,
             embedder: Embedder) -> tuple[Vectors, int]:
    """Vectors for ``items``: those of identical texts already stored are reused, each
    distinct remaining text is embedded once. Returns them and how many texts were embedded."""
    known = store.vectors_for_hashes([p.embed_hash for p in items if p.embed_hash])
    todo = {p.embed_hash or p.id: p.embedding_text for p in items
            if p.embed_hash not in known}
    if todo:
        known = {**known, **dict(zip(todo, embedder.embed(list(todo.values())), strict=True))}
    return np.stack([known[p.embed_hash or p.id] for p in items]), len(todo)
