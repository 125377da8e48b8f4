"""The offline embedding model: real vectors, no hub, checked weights."""

from __future__ import annotations

import numpy as np

from index.embedder import MINILM_SHA256, MiniLMEmbedder, as_llama_index, minilm_model_path


def test_model_file_is_the_pinned_one() -> None:
    import hashlib

    assert hashlib.sha256(minilm_model_path().read_bytes()).hexdigest() == MINILM_SHA256


def test_vectors_are_unit_length_and_meaningful(embedder: MiniLMEmbedder) -> None:
    v = embedder.embed(["The cat sat on the mat.", "A kitten rested on the rug.",
                        "Interest rates rose by half a point."])
    assert v.shape == (3, 384)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2


def test_batching_and_padding_do_not_change_vectors(embedder: MiniLMEmbedder) -> None:
    texts = ["short", "a much longer sentence that needs a lot more padding in its batch " * 3]
    together = embedder.embed(texts)
    alone = np.stack([embedder.embed([t])[0] for t in texts])
    assert np.allclose(together, alone, atol=1e-4)
    assert np.allclose(embedder.embed_query("short"), alone[0], atol=1e-4)


def test_long_text_is_truncated_not_rejected(embedder: MiniLMEmbedder) -> None:
    assert embedder.embed(["word " * 2000]).shape == (1, 384)


def test_llama_index_wrapper_gives_the_same_vectors(embedder: MiniLMEmbedder) -> None:
    wrapped = as_llama_index(embedder)
    q = wrapped.get_query_embedding("Who brokered the ceasefire?")
    assert np.allclose(q, embedder.embed_query("Who brokered the ceasefire?"), atol=1e-5)
    assert len(wrapped.get_text_embedding_batch(["a", "b"])) == 2
