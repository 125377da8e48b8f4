"""Passages stored before their vectors: searchable by their words at once, embedded later.

Embedding is the slow part of ingest (tens of passages a second on two cores), while storing
a passage's text takes about a millisecond. So ingest first stores each passage in the
collection ``NAME__pending`` (its text and metadata, with a one-number dummy vector, as the
catalog does), marks the article done, and the BM25 index, built from both collections,
finds it. A filler (:mod:`index.backfill`) then embeds pending passages and *moves* them
into ``NAME``: added there with their vector, then deleted here. ``NAME`` thus only ever
holds real vectors, so dense retrieval sees embedded passages and nothing else.

Why not placeholder vectors in ``NAME`` itself: Chroma's ``update`` of 4,000 vectors cost
4x the CPU of an add and a delete, and its HNSW graph then returned other nearest
neighbours than one built from the real vectors (3 of 20 top-10 lists equal).

A passage may sit in both collections for a moment (added to ``NAME``, not yet deleted
here; or a kill -9 between the two): readers take ``NAME``'s copy, and the next fill simply
moves it again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

T = TypeVar("T")
PENDING_SUFFIX = "__pending"
_PAGE = 5000


@dataclass(frozen=True)
class PendingPassage:
    """A stored passage waiting for its vector."""

    id: str
    article_id: str
    document: str
    metadata: dict[str, Any]  # as it will be stored in NAME (without embed_prefix)
    embed_hash: str
    embedding_text: str  # what is embedded: the title (when prepended), then the text


def pending_metadata(metadata: dict[str, Any], embed_prefix: str) -> dict[str, Any]:
    """A passage's metadata while pending: what the embedded text starts with is kept, so
    the filler embeds exactly what a direct ingest would."""
    return {**metadata, "embed_prefix": embed_prefix}


def _passage(pid: str, document: str | None, meta: dict[str, Any] | None) -> PendingPassage:
    meta = dict(meta or {})
    prefix = str(meta.pop("embed_prefix", ""))
    text = document or ""
    return PendingPassage(id=pid, article_id=str(meta.get("article_id", "")), document=text,
                          metadata=meta, embed_hash=str(meta.get("embed_hash", "")),
                          embedding_text=f"{prefix}\n{text}" if prefix else text)


class PendingPassages:
    """The ``NAME__pending`` collection. Reads never create it (a store written before it
    existed simply has nothing pending); writes do."""

    def __init__(self, client: Any, collection: str, call: Callable[[Callable[[], Any]], Any],
                 create: bool) -> None:
        self.name = f"{collection}{PENDING_SUFFIX}"
        self._client = client
        self._call = call
        self._collection: Any = self._open(create)

    def _open(self, create: bool) -> Any:
        if create:
            return self._call(lambda: self._client.get_or_create_collection(
                self.name, embedding_function=None))
        try:
            return self._call(lambda: self._client.get_collection(self.name,
                                                                  embedding_function=None))
        except Exception as exc:
            if "does not exist" in str(exc) or type(exc).__name__ == "NotFoundError":
                return None
            raise

    def _get(self) -> Any:
        """The collection, looked up again while absent (another process may create it)."""
        if self._collection is None:
            self._collection = self._open(create=False)
        return self._collection

    def count(self) -> int:
        found = self._get()
        return 0 if found is None else int(self._call(found.count))

    def add(self, ids: Sequence[str], documents: Sequence[str],
            metadatas: Sequence[dict[str, Any]], step: int) -> None:
        found = self._collection if self._collection is not None else self._open(create=True)
        self._collection = found
        for s in range(0, len(ids), step):
            self._call(partial(found.add, ids=list(ids[s:s + step]),
                               embeddings=[[1.0]] * len(ids[s:s + step]),
                               documents=list(documents[s:s + step]),
                               metadatas=list(metadatas[s:s + step])))

    def delete_articles(self, article_ids: Sequence[str]) -> None:
        found = self._get()
        if found is not None and article_ids:
            self._call(lambda: found.delete(where={"article_id": {"$in": list(article_ids)}}))

    def delete(self, ids: Sequence[str]) -> None:
        found = self._get()
        if found is not None and ids:
            self._call(lambda: found.delete(ids=list(ids)))

    def has_article(self, article_id: str) -> bool:
        found = self._get()
        return found is not None and bool(self._call(lambda: found.get(
            where={"article_id": article_id}, include=[], limit=1))["ids"])

    def get(self, ids: Sequence[str]) -> list[PendingPassage]:
        found = self._get()
        if found is None or not ids:
            return []
        got = self._call(lambda: found.get(ids=list(ids), include=["documents", "metadatas"]))
        return [_passage(i, d, m) for i, d, m in zip(got["ids"], got["documents"],
                                                     got["metadatas"], strict=True)]

    def page(self, limit: int, offset: int = 0) -> list[PendingPassage]:
        found = self._get()
        if found is None:
            return []
        got = self._call(partial(found.get, include=["documents", "metadatas"], limit=limit,
                                 offset=offset))
        return [_passage(i, d, m) for i, d, m in zip(got["ids"], got["documents"],
                                                     got["metadatas"], strict=True)]

    def all(self) -> Iterator[PendingPassage]:
        offset = 0
        while True:
            page = self.page(_PAGE, offset)
            if not page:
                return
            yield from page
            offset += len(page)
