"""Passages and the article catalog in Chroma, embedded (a data folder) or a Chroma server.

We call the Chroma client directly instead of llama-index's ChromaVectorStore: we need
deletes by article, a catalog for idempotent re-ingest and collection metadata for the model
check, none of which that store offers, and it stores a JSON copy of every node beside it.

Layout: collection ``NAME`` holds one record per passage (its vector, text and flat
metadata); ``NAME__articles`` holds one record per fully stored article. A catalog record is
written only after all of the article's passages, so it is the "done" mark that makes an
interrupted ingest safe to run again. ``NAME__pending`` holds passages stored before their
vectors (:mod:`index.pending`): searchable by their words, moved into ``NAME`` once embedded.
"""

from __future__ import annotations

import errno
import logging
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import numpy as np

from index.embedder import Vectors
from index.filters import day_number
from index.pending import PENDING_SUFFIX, PendingPassage, PendingPassages, pending_metadata
from index.types import Article, Passage

log = logging.getLogger(__name__)

T = TypeVar("T")
# Chroma's rules (3-512 of [a-zA-Z0-9._-], no '..', not an IPv4 address), kept short enough
# for the catalog's "__articles" suffix, and without '__' (which the catalog name uses).
# The pattern is the part a JSON schema can say; valid_collection_name adds the rest.
COLLECTION_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,60}[a-zA-Z0-9]$"
_NAME = re.compile(COLLECTION_PATTERN)
_IPV4 = re.compile(r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$")
COLLECTION_RULE = ("use 3-62 letters, digits, '.', '_' or '-' (no '__' or '..', not an IP "
                   "address), starting and ending with a letter or digit")


def valid_collection_name(name: str) -> bool:
    """Would Chroma (and our catalog naming) accept ``name`` as a collection?"""
    return bool(_NAME.match(name)) and ".." not in name and "__" not in name and not (
        _IPV4.match(name))
_PAGE = 5000
# Below this much free space a write cannot be trusted to finish: Chroma compacts its log
# into its segments in place, and a failed compaction stops reads too until space is freed.
MIN_FREE_BYTES = 32_000_000
_WRITE_TOKEN = "write_token"
_WRITING = "w-"  # a write token with this prefix: a write started and has not finished


class StoreError(RuntimeError):
    """A store problem the user can act on; the message says what to do."""


class StoreUnavailable(StoreError):
    """Chroma cannot be reached (server down, data folder unusable)."""


class EmbeddingModelMismatch(StoreError):
    """The collection was built with another embedding model; its vectors are not comparable."""


class CollectionNotFound(StoreError):
    """A read named a collection that does not exist (reads never create one)."""


class StoreFull(StoreError):
    """The disk under the store is full: nothing more can be written until space is freed."""


@dataclass(frozen=True)
class StoredArticle:
    """An article as listed in the catalog."""

    id: str
    title: str
    source: str
    url: str
    published: str
    passages: int
    hash: str
    origin: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "source": self.source, "url": self.url,
                "published": self.published, "passages": self.passages}


@dataclass(frozen=True)
class StoredPassage:
    """A passage as stored, with the article fields a citation shows."""

    id: str
    article_id: str
    number: int
    text: str
    start: int
    end: int
    title: str
    source: str
    url: str
    published: str
    page: int | None = None  # 1-based page of a paged article (a PDF), else None


@dataclass(frozen=True)
class ChromaAccess:
    """Where in a Chroma server a store lives and how to get in: its tenant and database
    (Chroma Cloud gives each customer one; a local `chroma run` has the defaults) and the
    token sent as ``x-chroma-token``, as Chroma Cloud expects it."""

    tenant: str = "default_tenant"
    database: str = "default_database"
    token: str | None = None


def open_client(data_dir: Path, chroma_url: str | None,
                access: ChromaAccess | None = None) -> Any:
    """A Chroma client: a server when ``chroma_url`` is set, else a data folder."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    access = access or ChromaAccess()
    try:
        if chroma_url:
            parsed = urlparse(chroma_url if "://" in chroma_url else f"http://{chroma_url}")
            https = parsed.scheme == "https"
            client = chromadb.HttpClient(
                host=parsed.hostname or "127.0.0.1", port=parsed.port or (443 if https else 8000),
                ssl=https, settings=settings, tenant=access.tenant, database=access.database,
                headers={"x-chroma-token": access.token} if access.token else None)
            client.heartbeat()
            log.info("store: Chroma server at %s (tenant %s, database %s)", chroma_url,
                     access.tenant, access.database)
        else:
            data_dir.mkdir(parents=True, exist_ok=True)
            client = chromadb.PersistentClient(path=str(data_dir / "chroma"), settings=settings)
            log.info("store: embedded Chroma in %s", data_dir / "chroma")
    except Exception as exc:
        where = chroma_url or str(data_dir)
        hint = ("start it (chroma run --path DIR --host 127.0.0.1 --port PORT) or unset "
                "RAG_CHROMA_URL" if chroma_url else "check the folder is writable (RAG_DATA_DIR)")
        text = str(exc).lower()
        if chroma_url and any(s in text for s in ("tenant", "database")):
            hint = (f"check RAG_CHROMA_TENANT ({access.tenant}) and RAG_CHROMA_DATABASE "
                    f"({access.database}) name ones that exist on that server")
        elif chroma_url and any(s in text for s in ("401", "403", "unauthori", "forbidden")):
            hint = "check RAG_CHROMA_TOKEN"
        raise StoreUnavailable(f"cannot open the Chroma store at {where}: {exc}; {hint}") from exc
    return client


class PassageStore:
    """One corpus: its passages collection and article catalog in a Chroma client."""

    def __init__(self, client: Any, collection: str, embedding_model: str,
                 where: str = "", create: bool = True, data_dir: Path | None = None) -> None:
        """Open (or, with ``create``, create) a collection. ``data_dir`` is the embedded
        store's folder, for naming it when its disk is full."""
        if not valid_collection_name(collection):
            raise StoreError(f"collection name {collection!r} is invalid: {COLLECTION_RULE}")
        self.collection_name = collection
        self.embedding_model = embedding_model
        self.where = where
        self.data_dir = data_dir
        self._client = client
        if create:
            self._passages = self._call(lambda: client.get_or_create_collection(
                collection, metadata={"embedding_model": embedding_model,
                                      "hnsw:space": "cosine"}, embedding_function=None))
            self._catalog = self._call(lambda: client.get_or_create_collection(
                f"{collection}__articles", embedding_function=None))
        else:
            self._passages = self._existing(collection)
            self._catalog = self._existing(f"{collection}__articles")
        self._pending = PendingPassages(client, collection, self._call, create)
        stored = (self._passages.metadata or {}).get("embedding_model")
        if stored and stored != embedding_model:
            raise EmbeddingModelMismatch(
                f"collection {collection!r} was built with the embedding model {stored!r}, but "
                f"{embedding_model!r} is configured: use the same model (RAG_EMBEDDER) or "
                "another collection (--collection / RAG_COLLECTION)")

    def _existing(self, name: str) -> Any:
        try:
            return self._call(lambda: self._client.get_collection(name,
                                                                  embedding_function=None))
        except StoreError:
            raise
        except Exception as exc:
            if "does not exist" in str(exc) or type(exc).__name__ == "NotFoundError":
                raise CollectionNotFound(
                    f"no collection named {self.collection_name!r} in the store at "
                    f"{self.where or 'the data folder'}: ingest articles into it first "
                    "(rag ingest PATH --collection NAME, or an upload)") from exc
            raise

    def _call(self, fn: Callable[[], T]) -> T:
        """Run a Chroma call, turning connection failures into StoreUnavailable and a full
        disk into StoreFull."""
        try:
            return fn()
        except StoreError:
            raise
        except Exception as exc:
            text = f"{type(exc).__name__}: {exc}"
            if any(s in text for s in ("Connect", "connect", "Timeout", "refused", "Remote")):
                raise StoreUnavailable(f"the Chroma store at {self.where or 'the data folder'} "
                                       f"stopped answering ({text}); check it is running") from exc
            full = disk_full(self.data_dir, exc)
            if full is not None:
                raise StoreFull(full) from exc
            raise

    # -- catalog -------------------------------------------------------------------------

    def articles(self, ids: Sequence[str] | None = None) -> list[StoredArticle]:
        """Catalog records, all or those with the given ids (missing ids are left out)."""
        if ids is not None:
            found: list[StoredArticle] = []
            for start in range(0, len(ids), _PAGE):
                page = list(dict.fromkeys(ids[start:start + _PAGE]))
                got = self._call(partial(self._catalog.get, ids=page, include=["metadatas"]))
                found.extend(_article(i, m) for i, m in zip(got["ids"], got["metadatas"],
                                                             strict=True))
            return found
        return [_article(i, m) for i, m in self._paged(self._catalog, ["metadatas"])]

    def write_token(self) -> str:
        """A token every write replaces, kept in the catalog collection's metadata: one small
        call tells a reader in any process whether the store changed since it last looked."""
        got = self._call(lambda: self._client.get_collection(self._catalog.name))
        return str((got.metadata or {}).get(_WRITE_TOKEN, ""))

    def _mark_write(self, done: bool = True) -> None:
        token = f"{time.time_ns()}-{uuid.uuid4().hex[:12]}"  # unique even for racing writers
        token = token if done else f"{_WRITING}{token}"
        self._call(lambda: self._catalog.modify(metadata={_WRITE_TOKEN: token}))

    def content_stamp(self) -> str:
        """What the stored passage texts are, for indexes derived from them (BM25): changes
        with every write and remove, in any process, but not when a pending passage gets its
        vector (its text stays). After a finished write the token alone says it; while a
        write is under way, or after one was killed, the counts say it too."""
        token = self.write_token()  # first: a write after this makes the stamp stale
        if token and not token.startswith(_WRITING):
            return f"{self.article_count()}:{token}"
        return f"{self.passage_count()}:{self.article_count()}:{token}"

    def articles_from_origins(self, origins: Sequence[str]) -> dict[str, list[StoredArticle]]:
        """Catalog records by origin, for many origins in a few calls instead of one each."""
        found: dict[str, list[StoredArticle]] = {}
        unique = list(dict.fromkeys(origins))
        for start in range(0, len(unique), _PAGE):
            page = unique[start:start + _PAGE]
            got = self._call(partial(self._catalog.get, where={"origin": {"$in": page}},
                                     include=["metadatas"]))
            for i, m in zip(got["ids"], got["metadatas"], strict=True):
                article = _article(i, m)
                found.setdefault(article.origin, []).append(article)
        return found

    def vectors_for_hashes(self, text_hashes: Sequence[str]) -> dict[str, Vectors]:
        """Stored vectors of any passage whose embedded text has one of these hashes: a text
        repeated across articles (syndicated news) is embedded once."""
        found: dict[str, Vectors] = {}
        unique = list(dict.fromkeys(text_hashes))
        for start in range(0, len(unique), _PAGE):
            page = unique[start:start + _PAGE]
            got = self._call(partial(self._passages.get, where={"embed_hash": {"$in": page}},
                                     include=["embeddings", "metadatas"]))
            found.update((str(m["embed_hash"]), np.asarray(e, dtype=np.float32))
                         for e, m in zip(got["embeddings"], got["metadatas"], strict=True)
                         if m and m.get("embed_hash"))
        return found

    def vectors_by_text_hash(self, article_ids: Sequence[str]) -> dict[str, Vectors]:
        """Stored vectors of these articles' passages, keyed by the hash of the text embedded."""
        got = self._call(lambda: self._passages.get(
            where={"article_id": {"$in": list(article_ids)}}, include=["embeddings",
                                                                       "metadatas"]))
        return {str(m["embed_hash"]): np.asarray(e, dtype=np.float32)
                for e, m in zip(got["embeddings"], got["metadatas"], strict=True)
                if m and m.get("embed_hash")}

    def corpora(self) -> list[str]:
        """The names of every collection (corpus) in this store, sorted."""
        return self._call(lambda: corpora(self._client))

    def write_problem(self) -> str | None:
        """Why a write would fail now (the data folder's disk is full), or None."""
        return disk_full(self.data_dir)

    def _refuse_when_full(self) -> None:
        """No write starts on a (nearly) full disk: a write Chroma logged but cannot compact
        makes every later read of that collection fail, or hang, until space is freed."""
        problem = self.write_problem()
        if problem is not None:
            raise StoreFull(problem)

    def passage_count(self) -> int:
        """Stored passages, embedded or waiting for their vector."""
        return self.embedded_count() + self.pending_count()

    def embedded_count(self) -> int:
        return int(self._call(self._passages.count))

    def pending_count(self) -> int:
        """Passages stored (and searchable by their words) whose vector is not there yet."""
        return self._pending.count()

    def article_count(self) -> int:
        return int(self._call(self._catalog.count))

    # -- writes --------------------------------------------------------------------------

    def write_articles(self, batch: Sequence[tuple[Article, Sequence[Passage], Vectors]],
                       text_hashes: Sequence[str] = (),
                       embed_prefixes: Sequence[str] = ()) -> None:
        """Replace the stored passages of several articles, then mark them all done.

        ``text_hashes`` (one per passage, in order) key each vector by the text embedded, so a
        later edit of the article can reuse it (:meth:`vectors_by_text_hash`). A vector row
        of NaN means "not embedded yet": that passage is stored pending (:mod:`index.pending`),
        and ``embed_prefixes`` says what its embedded text starts with (the title, or "").

        One delete, a few adds and one catalog upsert per batch instead of three calls per
        article: each Chroma call has a fixed cost (a round trip to a Chroma server), which
        adds up over thousands of articles.
        """
        if not batch:
            return
        self._refuse_when_full()
        # The write token changes before and after, so a derived index built while the write
        # was under way (or before a crash in the middle of it) is seen as stale.
        self._mark_write(done=False)
        ids = [article.id for article, _, _ in batch]
        self._call(lambda: self._passages.delete(where={"article_id": {"$in": ids}}))
        self._pending.delete_articles(ids)
        passages = [p for _, article_passages, _ in batch for p in article_passages]
        vectors = np.concatenate([v for _, _, v in batch])
        metadatas: list[dict[str, Any]] = []
        for article, article_passages, _ in batch:
            base = _base_metadata(article)
            day = day_number(article.published)
            metadatas.extend(
                {**base, "number": p.number, "start": p.start, "end": p.end,
                 "page": p.page or 0, "published_day": day}
                for p in article_passages)
        for meta, text_hash in zip(metadatas, text_hashes, strict=False):
            meta["embed_hash"] = text_hash
        step = max(1, int(self._call(self._client.get_max_batch_size)))
        waiting = np.isnan(vectors).any(axis=1) if len(vectors) else np.zeros(0, dtype=bool)
        ready = [n for n in range(len(passages)) if not waiting[n]]
        for s in range(0, len(ready), step):
            rows = ready[s:s + step]
            self._call(partial(self._passages.add, ids=[passages[n].id for n in rows],
                               embeddings=vectors[rows],
                               documents=[passages[n].text for n in rows],
                               metadatas=[metadatas[n] for n in rows]))
        later = [n for n in range(len(passages)) if waiting[n]]
        prefixes = list(embed_prefixes) or [""] * len(passages)
        self._pending.add([passages[n].id for n in later], [passages[n].text for n in later],
                          [pending_metadata(metadatas[n], prefixes[n]) for n in later], step)
        now = time.time()
        catalog = [{**_base_metadata(a), "hash": a.hash, "passages": len(p), "origin": a.origin,
                    "authors": a.authors, "ingested_at": now} for a, p, _ in batch]
        self._call(lambda: self._catalog.upsert(ids=ids, embeddings=[[1.0]] * len(ids),
                                                metadatas=catalog))
        self._mark_write()

    def remove_article(self, article_id: str) -> bool:
        """Delete an article and its passages; False when it was not stored."""
        known = self._call(lambda: self._catalog.get(ids=[article_id], include=[]))["ids"]
        stray = self._call(lambda: self._passages.get(where={"article_id": article_id},
                                                      include=[], limit=1))["ids"]
        if not known and not stray and not self._pending.has_article(article_id):
            return False
        self._mark_write(done=False)
        # catalog first: never 'done' with passages gone
        self._call(lambda: self._catalog.delete(ids=[article_id]))
        self._call(lambda: self._passages.delete(where={"article_id": article_id}))
        self._pending.delete_articles([article_id])
        self._mark_write()
        return True

    # -- pending passages get their vectors ----------------------------------------------

    def pending_passages(self, limit: int, offset: int = 0) -> list[PendingPassage]:
        """A page of passages waiting for their vector."""
        return self._pending.page(limit, offset)

    def store_vectors(self, items: Sequence[PendingPassage], vectors: Vectors) -> int:
        """Move embedded pending passages into the passages collection; returns how many.

        The caller holds the data folder's write lock, so no writer of this folder runs
        meanwhile. Only passages still pending with the same embedded text, of articles in
        the catalog (fully stored), are moved: a passage removed or replaced while it was
        being embedded is not brought back. The move is an add, then a delete: a kill
        between them leaves the passage in both places, and the next fill moves it again.
        """
        self._refuse_when_full()
        current = {p.id: p for p in self._pending.get([p.id for p in items])}
        done = {a.id for a in self.articles(list({p.article_id for p in items}))}
        rows = [n for n, p in enumerate(items) if p.article_id in done
                and (now := current.get(p.id)) is not None and now.embed_hash == p.embed_hash]
        if not rows:
            return 0
        moved = [items[n] for n in rows]
        self._call(lambda: self._passages.upsert(
            ids=[p.id for p in moved], embeddings=vectors[rows],
            documents=[p.document for p in moved], metadatas=[p.metadata for p in moved]))
        self._pending.delete([p.id for p in moved])
        # A writer on another machine (another data folder, so not under our lock) may
        # have removed an article meanwhile: take its passages out again.
        gone = {p.article_id for p in moved} - {a.id for a in self.articles(
            list({p.article_id for p in moved}))}
        if gone:
            self._call(lambda: self._passages.delete(where={"article_id": {"$in": list(gone)}}))
        return len(moved)

    # -- reads ---------------------------------------------------------------------------

    def query(self, vector: Vectors, k: int,
              where: dict[str, Any] | None = None) -> list[tuple[StoredPassage, float]]:
        """The k nearest passages with cosine similarity, best first."""
        if k <= 0:
            return []
        got = self._call(lambda: self._passages.query(
            query_embeddings=[vector], n_results=k, where=where or None,
            include=["documents", "metadatas", "distances"]))
        rows = zip(got["ids"][0], got["documents"][0], got["metadatas"][0],
                   got["distances"][0], strict=True)
        return [(_passage(i, d, m), 1.0 - float(dist)) for i, d, m, dist in rows]

    def pending_ids(self, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` are stored but still wait for their vector."""
        if not ids or self.pending_count() == 0:
            return set()
        return {p.id for p in self._pending.get(list(ids))}

    def passages(self, ids: Sequence[str]) -> list[StoredPassage]:
        """The passages with these ids (embedded or pending), in that order."""
        got = self._call(lambda: self._passages.get(ids=list(ids),
                                                    include=["documents", "metadatas"]))
        by_id = {i: _passage(i, d, m) for i, d, m in zip(got["ids"], got["documents"],
                                                         got["metadatas"], strict=True)}
        missing = [i for i in ids if i not in by_id]
        if missing:  # found by BM25 before their vectors exist
            by_id.update((p.id, _passage(p.id, p.document, p.metadata))
                         for p in self._pending.get(missing))
        return [by_id[i] for i in ids if i in by_id]

    def all_passages(self) -> Iterator[StoredPassage]:
        """Every stored passage, embedded or pending, each once, for rebuilding derived
        indexes."""
        seen: set[str] = set()
        for pid, meta, doc in self._paged(self._passages, ["metadatas", "documents"]):
            seen.add(pid)
            yield _passage(pid, doc, meta)
        for pending in self._pending.all():
            if pending.id not in seen:  # a move under way: the embedded copy counts
                yield _passage(pending.id, pending.document, pending.metadata)

    def _paged(self, collection: Any, include: list[str]) -> Iterator[Any]:
        offset = 0
        while True:
            got = self._call(partial(collection.get, include=include, limit=_PAGE,
                                     offset=offset))
            if not got["ids"]:
                return
            columns = [got[name] for name in include]
            yield from zip(got["ids"], *columns, strict=True)
            offset += len(got["ids"])


def disk_full(data_dir: Path | None, exc: BaseException | None = None) -> str | None:
    """'no space left on device (PATH)' when ``exc`` is ENOSPC or the data folder's disk has
    (almost) no room left, else None. Chroma reports a full disk in many ways ("Error in
    compaction", "database or disk is full"), so the disk itself is asked."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return _full_message(data_dir or Path(exc.filename or "."))
    if data_dir is None:
        return None
    try:
        free = shutil.disk_usage(data_dir).free
    except OSError:
        return None
    return _full_message(data_dir) if free < MIN_FREE_BYTES else None


def _full_message(where: Path) -> str:
    return (f"no space left on device ({where}): the store needs {MIN_FREE_BYTES // 10**6} "
            "MB free; free some disk space there (or move RAG_DATA_DIR) and run the command "
            "again; articles stored so far are kept")


def full_error(where: Path, exc: OSError) -> StoreFull | None:
    """StoreFull for an ENOSPC raised while writing under ``where``, else None."""
    return StoreFull(_full_message(where)) if exc.errno == errno.ENOSPC else None


def _base_metadata(article: Article) -> dict[str, Any]:
    """The article fields every passage record carries, so a citation needs no second read."""
    return {"article_id": article.id, "title": article.title, "source": article.source,
            "url": article.url, "published": article.published}


def _article(article_id: str, meta: dict[str, Any] | None) -> StoredArticle:
    meta = meta or {}
    return StoredArticle(id=article_id, title=str(meta.get("title", "")),
                         source=str(meta.get("source", "")), url=str(meta.get("url", "")),
                         published=str(meta.get("published", "")),
                         passages=int(meta.get("passages", 0)), hash=str(meta.get("hash", "")),
                         origin=str(meta.get("origin", "")))


def _passage(pid: str, text: str | None, meta: dict[str, Any] | None) -> StoredPassage:
    meta = meta or {}
    return StoredPassage(id=pid, article_id=str(meta.get("article_id", "")),
                         number=int(meta.get("number", 0)), text=text or "",
                         start=int(meta.get("start", 0)), end=int(meta.get("end", 0)),
                         title=str(meta.get("title", "")), source=str(meta.get("source", "")),
                         url=str(meta.get("url", "")), published=str(meta.get("published", "")),
                         page=int(meta.get("page") or 0) or None)


def corpora(client: Any) -> list[str]:
    """The names of every collection (corpus) a Chroma client holds, sorted (the article
    catalogs beside them left out)."""
    found = {getattr(c, "name", c) for c in client.list_collections()}
    return sorted(str(n) for n in found if not str(n).endswith(("__articles", PENDING_SUFFIX)))
