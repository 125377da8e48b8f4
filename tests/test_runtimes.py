"""The embedding runtimes: OpenVINO gives onnxruntime's vectors (so one model name), and
anything else falls back to onnxruntime or fails with a clear message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from index.embedder import EmbedderError, MiniLMEmbedder, minilm_model_path
from index.ingest import ingest_paths
from index.runtimes import (
    REFERENCE_SENTENCES,
    Feeds,
    OnnxRuntimeSession,
    RuntimeUnavailable,
    open_runtime,
)
from tests.helpers import ROOT, SAMPLE_DIR, open_store

pytest.importorskip("openvino")


class _ShiftedRuntime(OnnxRuntimeSession):
    """onnxruntime with its hidden states disturbed: a runtime that computes other vectors."""

    name = "shifted"

    def run(self, feeds: Feeds) -> npt.NDArray[np.float32]:
        hidden = super().run(feeds)
        return hidden + np.random.default_rng(0).normal(0, 1.0, hidden.shape).astype(np.float32)


@pytest.fixture(scope="module")
def both() -> tuple[MiniLMEmbedder, MiniLMEmbedder]:
    return (MiniLMEmbedder(runtime="onnxruntime", threads=1),
            MiniLMEmbedder(runtime="openvino", threads=1))


def test_openvino_gives_the_vectors_of_onnxruntime(
        both: tuple[MiniLMEmbedder, MiniLMEmbedder]) -> None:
    ort, ov = both
    assert (ort.runtime, ov.runtime) == ("onnxruntime", "openvino")
    assert ort.name == ov.name  # the same model, the same collection name
    texts = [*REFERENCE_SENTENCES, (SAMPLE_DIR / "aleppo-un-russia-2016.txt").read_text()[:1500]]
    cosines = (ort.embed(texts) * ov.embed(texts)).sum(axis=1)
    assert cosines.min() > 0.999


def test_a_collection_built_by_one_runtime_is_searched_by_the_other(
        both: tuple[MiniLMEmbedder, MiniLMEmbedder], tmp_path: Path) -> None:
    ort, ov = both
    store = open_store(tmp_path / "data")
    ingest_paths([SAMPLE_DIR], store, ort, max_bytes=25_000_000, progress=False)
    question = "Who called the Security Council meeting about Aleppo?"
    by_ort = store.query(ort.embed_query(question), 3)
    by_ov = store.query(ov.embed_query(question), 3)
    assert [p.id for p, _ in by_ort] == [p.id for p, _ in by_ov]
    assert np.allclose([s for _, s in by_ort], [s for _, s in by_ov], atol=2e-3)


def test_a_runtime_with_other_vectors_is_refused_and_auto_falls_back(
        both: tuple[MiniLMEmbedder, MiniLMEmbedder], caplog: pytest.LogCaptureFixture) -> None:
    ort, _ = both
    shifted = _ShiftedRuntime(minilm_model_path(), threads=1)
    with pytest.raises(RuntimeUnavailable, match="differ from onnxruntime"):
        ort._check(shifted)

    def refuse(runtime: object) -> None:
        raise RuntimeUnavailable("its vectors differ (test)")

    fallback = open_runtime(minilm_model_path(), "auto", threads=1, check=refuse)
    assert fallback.name == "onnxruntime"
    assert "using onnxruntime" in caplog.text
    with pytest.raises(RuntimeUnavailable):
        open_runtime(minilm_model_path(), "openvino", threads=1, check=refuse)


def test_without_openvino_installed_auto_uses_onnxruntime_and_openvino_is_an_error() -> None:
    """A Python where `import openvino` fails, as on a platform without its wheels."""
    script = ("import sys; sys.modules['openvino'] = None\n"
              "from index.embedder import EmbedderError, MiniLMEmbedder\n"
              "print(MiniLMEmbedder(threads=1).runtime)\n"
              "try:\n    MiniLMEmbedder(runtime='openvino')\n"
              "except EmbedderError as exc:\n    print('error:', exc)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=True)
    runtime, error = done.stdout.strip().splitlines()
    assert runtime == "onnxruntime"
    assert error.startswith("error: RAG_EMBED_RUNTIME=openvino: openvino is not installed")
    assert "use auto or onnxruntime" in error


def test_explicit_openvino_failure_is_an_embedder_error() -> None:
    with pytest.raises(EmbedderError, match="RAG_EMBED_RUNTIME=openvino"):
        MiniLMEmbedder(runtime="openvino", threads=1, hint="NO_SUCH_HINT")  # type: ignore[arg-type]
