"""Embedding throughput per option, side by side in one run, against today's embedder.

Every option embeds the same passage texts (the dev corpus as ingest embeds them: title +
passage) in interleaved rounds; the baseline is onnxruntime reading up to 256 tokens, as
before this bench existed. Reported per option: wall and CPU seconds, passages per second,
speed-up against the baseline (wall and CPU) and the lowest cosine between its vectors and
the baseline's (1.0: the same vectors). Options:

- ``ort``: onnxruntime, 256 tokens (the baseline)
- ``ov-latency`` / ``ov-throughput``: OpenVINO with that performance hint, 256 tokens
- ``ov-latency-192``, ``ov-latency-128`` ...: the same reading at most 192 or 128 tokens of
  each passage
- ``ov-1thread``: OpenVINO with one inference thread (the other core left to the server)
- ``-bs8``: batches of 8 passages instead of 32
- ``ov-f32``: OpenVINO computing in float32 where it would use bfloat16 (CPUs with AVX-512
  BF16 use it by default: slightly different vectors)
- ``dedupe``: the best OpenVINO option embedding each distinct text once

    python -m bench.embed_bench                       # the whole dev corpus, one round
    python -m bench.embed_bench --limit 400 --rounds 2
    python -m bench.embed_bench --write-reference     # index/minilm_reference.npy
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import ARTICLES, load_articles, measure, table
from index.clean import clean_article
from index.embedder import MiniLMEmbedder, Vectors
from index.ingest import SplitOptions, embedding_text
from index.passages import split_article
from index.runtimes import REFERENCE_PATH, REFERENCE_SENTENCES

OUT = Path(__file__).resolve().parent / "out"

OPTIONS: dict[str, dict[str, Any]] = {
    "ort": {"runtime": "onnxruntime"},
    "ov-latency": {"runtime": "openvino", "hint": "LATENCY"},
    "ov-throughput": {"runtime": "openvino", "hint": "THROUGHPUT"},
    "ov-1thread": {"runtime": "openvino", "hint": "LATENCY", "threads": 1},
    "ov-latency-bs8": {"runtime": "openvino", "hint": "LATENCY", "batch_size": 8},
    "ov-1thread-bs8": {"runtime": "openvino", "hint": "LATENCY", "threads": 1, "batch_size": 8},
    "ov-f32": {"runtime": "openvino", "hint": "LATENCY",
               "options": {"INFERENCE_PRECISION_HINT": "f32"}},
    "ort-128": {"runtime": "onnxruntime", "max_tokens": 128},
    "ov-latency-192": {"runtime": "openvino", "hint": "LATENCY", "max_tokens": 192},
    "ov-latency-128": {"runtime": "openvino", "hint": "LATENCY", "max_tokens": 128},
    "ov-throughput-128": {"runtime": "openvino", "hint": "THROUGHPUT", "max_tokens": 128},
}


def corpus_texts(path: Path, limit: int | None) -> list[str]:
    """The embedding texts of the corpus's passages, as ingest builds them."""
    options = SplitOptions()
    texts = []
    for article in load_articles(path):
        article = clean_article(article)
        texts += [embedding_text(article, p, options)
                  for p in split_article(article, options.max_words, options.overlap_words)]
    return texts[:limit] if limit else texts


def embed_distinct(embedder: MiniLMEmbedder, texts: list[str]) -> Vectors:
    """Each distinct text embedded once (syndicated news repeats whole passages)."""
    unique = list(dict.fromkeys(texts))
    vectors = dict(zip(unique, embedder.embed(unique), strict=True))
    return np.stack([vectors[t] for t in texts])


def write_reference() -> None:
    vectors = MiniLMEmbedder(runtime="onnxruntime", query_cache=0).embed(
        list(REFERENCE_SENTENCES))
    np.save(REFERENCE_PATH, vectors.astype(np.float32))
    print(f"wrote {REFERENCE_PATH}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--articles", type=Path, default=ARTICLES)
    parser.add_argument("--limit", type=int, default=None, help="first N passages only")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--options", nargs="+", default=[*OPTIONS, "dedupe"])
    parser.add_argument("--dedupe-of", default="ov-throughput-128",
                        help="the option the dedupe row uses")
    parser.add_argument("--write-reference", action="store_true")
    args = parser.parse_args()
    if args.write_reference:
        write_reference()
        return
    texts = corpus_texts(args.articles, args.limit)
    distinct = len(set(texts))
    print(f"{len(texts)} passages ({distinct} distinct texts); load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}", file=sys.stderr)
    embedders: dict[str, MiniLMEmbedder] = {}
    for name in args.options:
        config = OPTIONS[args.dedupe_of if name == "dedupe" else name]
        embedders[name] = MiniLMEmbedder(query_cache=0, **config)
        embedders[name].embed(texts[:16])  # warm-up: first calls allocate buffers
    runs: dict[str, list[tuple[float, float]]] = {n: [] for n in args.options}
    vectors: dict[str, Vectors] = {}
    for r in range(args.rounds):  # interleaved and rotated: load drift hits every option
        order = args.options[r % len(args.options):] + args.options[:r % len(args.options)]
        for name in order:
            embedder = embedders[name]
            work = ((lambda e=embedder: embed_distinct(e, texts)) if name == "dedupe"
                    else (lambda e=embedder: e.embed(texts)))
            wall, cpu, got = measure(work)
            runs[name].append((wall, cpu))
            vectors[name] = got
            print(f"round {r + 1} {name}: {wall:.1f} s wall, {cpu:.1f} s CPU", file=sys.stderr)
    OUT.mkdir(exist_ok=True)
    base_name = args.options[0]
    base = min(w for w, _ in runs[base_name]), min(c for _, c in runs[base_name])
    rows = []
    for name in args.options:
        wall, cpu = min(w for w, _ in runs[name]), min(c for _, c in runs[name])
        cosine = float((vectors[name] * vectors[base_name]).sum(axis=1).min())
        rows.append([name, embedders[name].runtime, f"{wall:.1f}", f"{len(texts) / wall:.1f}",
                     f"{cpu:.1f}", f"{len(texts) / cpu:.1f}", f"{base[0] / wall:.2f}",
                     f"{base[1] / cpu:.2f}", f"{cosine:.4f}"])
    print(table(["option", "runtime", "wall s", "passages/s", "CPU s", "passages/CPU s",
                 f"speed-up vs {base_name} (wall)", "(CPU)", "min cosine vs baseline"], rows))
    print(f"\nload average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
