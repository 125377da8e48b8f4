"""Print what a data folder holds as JSON, from a fresh process.

Tests read a store that another process has been writing through this, because an
embedded Chroma client caches what it has loaded and would not see the other's writes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from index.lexical import LexicalIndex
from index.store import PassageStore, open_client


def probe(data_dir: Path, collection: str = "articles") -> dict[str, dict[str, int]]:
    """Per article: passages the catalog records, passages stored (embedded or pending),
    passages BM25 indexed, passages waiting for their vectors.

    Asking the BM25 index for a ranking makes it (re)build from the store, as a query would.
    """
    store = PassageStore(open_client(data_dir, None), collection,
                         "all-MiniLM-L6-v2-onnx-int8", where=str(data_dir))
    stored: dict[str, int] = {}
    for passage in store.all_passages():
        stored[passage.article_id] = stored.get(passage.article_id, 0) + 1
    lexical = LexicalIndex(store, data_dir / "bm25" / collection)
    lexical.rank("harbour", 1, 0)
    indexed: dict[str, int] = {}
    for article_id in lexical._current().article_ids:
        indexed[str(article_id)] = indexed.get(str(article_id), 0) + 1
    pending: dict[str, int] = {}
    for waiting in store.pending_passages(limit=1_000_000):
        pending[waiting.article_id] = pending.get(waiting.article_id, 0) + 1
    return {"catalog": {a.id: a.passages for a in store.articles()}, "stored": stored,
            "bm25": indexed, "pending": pending}


if __name__ == "__main__":
    print(json.dumps(probe(Path(sys.argv[1]), *sys.argv[2:3])))
