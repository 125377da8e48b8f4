"""The server embeds from a thread pool: concurrent calls give the same vectors as one by one."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from index.embedder import MiniLMEmbedder


def test_concurrent_embeddings_match_sequential_ones():
    embedder = MiniLMEmbedder(query_cache=0)
    texts = [f"Question {i}: who rebuilt bridge {i} in the river town?" for i in range(8)]
    sequential = np.stack([embedder.embed_query(t) for t in texts])
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = np.stack(list(pool.map(embedder.embed_query, texts)))
    np.testing.assert_allclose(concurrent, sequential, atol=1e-5)
