"""What the exported model reads and where it is written: the pair format (shared by the
pairs, the fine-tune and the export), the tokenisation the runtime would use (the MiniLM
tokenizer the embedder ships), and the reference pairs whose scores go into the manifest."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from index.embedder import TOKENIZER_PATH

OUT = Path(__file__).parent / "out"
MODEL_PATH = OUT / "answer_scorer.onnx"
MANIFEST_PATH = MODEL_PATH.with_suffix(".json")
MAX_TOKENS = 128
# Scored by onnxruntime at export (the manifest's reference_logits): a runtime that loads the
# model checks that it gives the same scores.
REFERENCE_PAIRS = (
    ("Who won Super Bowl LIX?",
     "Eagles rout Chiefs | The Philadelphia Eagles beat the Kansas City Chiefs 40-22 to win "
     "Super Bowl LIX on Sunday."),
    ("Who won Super Bowl LIX?",
     "Eagles rout Chiefs | The Kansas City Chiefs had won the two previous Super Bowls."),
    ("How much will the ferry repairs cost?",
     "Ferries | The work on the two ferries will cost 48,000 euros, the council said."),
)


def pair_text(title: str, sentence: str) -> str:
    """The second segment the model reads: the article's title, then the sentence. The
    title says what a sentence is about ("no deaths were reported" in a flood story)."""
    title = " ".join(title.split())
    return f"{title} | {sentence}" if title else sentence


def encode_pairs(pairs: Sequence[tuple[str, str]],
                 max_tokens: int = MAX_TOKENS) -> dict[str, npt.NDArray[np.int64]]:
    """[CLS] question [SEP] text [SEP] rows padded to the longest, as the model's inputs."""
    from tokenizers import Tokenizer

    tokenizer: Any = Tokenizer.from_file(str(TOKENIZER_PATH))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_tokens, strategy="only_second")
    encoded = tokenizer.encode_batch(list(pairs))
    width = max(len(e.ids) for e in encoded)
    out = {name: np.zeros((len(encoded), width), dtype=np.int64)
           for name in ("input_ids", "attention_mask", "token_type_ids")}
    for n, e in enumerate(encoded):
        out["input_ids"][n, :len(e.ids)] = e.ids
        out["attention_mask"][n, :len(e.ids)] = 1
        out["token_type_ids"][n, :len(e.ids)] = e.type_ids
    return out
