"""How the embedder runs the model: batches that bound padding, and safe use from threads."""

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


def test_batches_bound_padding_and_keep_every_text():
    from index.embedder import _batches

    lengths = sorted([5, 6, 6, 9, 12, 14, 20, 21, 40, 41, 42, 60, 200, 256, 256, 256] * 3)
    order = list(range(100, 100 + len(lengths)))
    batches = list(_batches(order, lengths, size=8))
    assert [i for b in batches for i in b] == order
    for batch in batches:
        sizes = [lengths[i - 100] for i in batch]
        assert len(batch) <= 8
        assert len(batch) == 1 or max(sizes) * len(sizes) <= 1.25 * sum(sizes)
