"""Where the MiniLM graph runs: OpenVINO when it is installed and reproduces the reference
vectors, else onnxruntime.

Both read the same ``model.onnx``. On the 2-core x86 machines this project runs on, OpenVINO
ran it 2.5-3x cheaper in CPU time than onnxruntime (docs/benchmarks.md, ``bench/embed_bench``)
with vectors equal to cosine >= 0.9996. Equal vectors are what lets a collection built by
one runtime be queried and extended by the other under the same model name, so OpenVINO is
only used after it has embedded a few reference sentences to within ``MIN_COSINE`` of the
vectors onnxruntime gave for them (``minilm_reference.npy``, made by
``python -m bench.embed_bench --write-reference``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

RuntimeChoice = Literal["auto", "onnxruntime", "openvino"]
Hint = Literal["LATENCY", "THROUGHPUT"]
Feeds = dict[str, npt.NDArray[np.int64]]

REFERENCE_PATH = Path(__file__).with_name("minilm_reference.npy")
# Embedded by every runtime before it is trusted; their onnxruntime vectors are the reference.
REFERENCE_SENTENCES = (
    "The UN Security Council met on Sunday to discuss the bombing of Aleppo.",
    "Shares of the carmaker fell 4% after it cut its forecast for the year, citing weaker "
    "demand in China and higher costs for batteries.",
    "Who won the women's world rapid chess championship?",
)
MIN_COSINE = 0.999


class RuntimeUnavailable(RuntimeError):
    """The runtime asked for is not installed, cannot compile the model, or does not
    reproduce the reference vectors."""


class InferenceRuntime(Protocol):
    """Runs the graph on one padded batch and returns ``last_hidden_state``."""

    name: str

    def run(self, feeds: Feeds) -> npt.NDArray[np.float32]: ...


class OnnxRuntimeSession:
    """onnxruntime's CPU provider: always installed, the reference."""

    name = "onnxruntime"

    def __init__(self, model_path: Path, threads: int = 0) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        # Idle threads sleep instead of spinning: a spinning pool delays the Chroma query that
        # follows every question embedding and steals cores on a shared laptop.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(model_path), options,
                                             providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self._session.get_inputs()}

    def run(self, feeds: Feeds) -> npt.NDArray[np.float32]:
        wanted = {k: v for k, v in feeds.items() if k in self.inputs}
        hidden: npt.NDArray[np.float32] = self._session.run(["last_hidden_state"], wanted)[0]
        return hidden


class OpenVINOSession:
    """OpenVINO's CPU plugin on the same ONNX file (``pip install openvino``)."""

    name = "openvino"

    def __init__(self, model_path: Path, threads: int = 0, hint: Hint = "LATENCY",
                 options: Mapping[str, Any] | None = None) -> None:
        """``options``: more OpenVINO CPU properties (e.g. INFERENCE_PRECISION_HINT)."""
        try:
            import openvino as ov
        except ImportError as exc:
            raise RuntimeUnavailable(f"openvino is not installed ({exc})") from exc
        try:
            core = ov.Core()
            model = core.read_model(str(model_path))
            config: dict[str, Any] = {"PERFORMANCE_HINT": hint, **(options or {})}
            if threads:
                config["INFERENCE_NUM_THREADS"] = threads
            self._compiled = core.compile_model(model, "CPU", config)
        except Exception as exc:  # an unsupported CPU or OS: say so, the caller falls back
            raise RuntimeUnavailable(f"openvino cannot run the model here: {exc}") from exc
        self.inputs = {i.get_any_name() for i in self._compiled.inputs}
        self._output = self._compiled.output("last_hidden_state")
        self._request = self._compiled.create_infer_request()  # callers serialise runs

    def run(self, feeds: Feeds) -> npt.NDArray[np.float32]:
        wanted = {k: v for k, v in feeds.items() if k in self.inputs}
        hidden: npt.NDArray[np.float32] = np.array(self._request.infer(wanted)[self._output])
        return hidden


def open_runtime(model_path: Path, choice: RuntimeChoice, threads: int = 0,
                 check: Any = None, hint: Hint = "LATENCY",
                 options: Mapping[str, Any] | None = None) -> InferenceRuntime:
    """The runtime ``choice`` names; ``auto`` is OpenVINO when it works here, else onnxruntime.

    ``check(runtime)`` must raise RuntimeUnavailable when the runtime's vectors differ from
    the reference: an explicit ``openvino`` then fails, ``auto`` falls back with a warning.
    """
    if choice == "onnxruntime":
        return OnnxRuntimeSession(model_path, threads)
    try:
        runtime: InferenceRuntime = OpenVINOSession(model_path, threads, hint, options)
        if check is not None:
            check(runtime)
        return runtime
    except RuntimeUnavailable as exc:
        if choice == "openvino":
            raise
        log.warning("embedding runtime: %s; using onnxruntime", exc)
        return OnnxRuntimeSession(model_path, threads)


def load_reference() -> npt.NDArray[np.float32] | None:
    """The onnxruntime vectors of REFERENCE_SENTENCES, or None when the file is missing."""
    if not REFERENCE_PATH.exists():
        return None
    reference: npt.NDArray[np.float32] = np.load(REFERENCE_PATH)
    return reference
