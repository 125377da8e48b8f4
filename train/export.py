"""Export the fine-tuned cross-encoder to ONNX, quantise it to int8 and write it with its
manifest (sha256, base weights, data digest, seed, hyper-parameters, training time, held-out
figures, reference scores) into train/out/.

    python -m train.export --weights train/out/model.pt --pairs train/out/pairs.jsonl
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from train.finetune import CrossEncoder, base_dir
from train.scorer import MANIFEST_PATH, MODEL_PATH, REFERENCE_PAIRS, encode_pairs


def export(weights: Path, target: Path) -> None:
    model = CrossEncoder(base_dir())
    model.load_state_dict(torch.load(weights, map_location="cpu"))
    model.eval()
    dummy = encode_pairs([("Who won?", "The Eagles won the game.")])
    feeds = tuple(torch.from_numpy(dummy[k]) for k in ("input_ids", "attention_mask",
                                                       "token_type_ids"))
    axes = {0: "batch", 1: "tokens"}
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "fp32.onnx"
        torch.onnx.export(model, feeds, str(plain), dynamo=False, opset_version=17,
                          input_names=["input_ids", "attention_mask", "token_type_ids"],
                          output_names=["logits"],
                          dynamic_axes={"input_ids": axes, "attention_mask": axes,
                                        "token_type_ids": axes, "logits": {0: "batch"}})
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(plain), str(target), weight_type=QuantType.QInt8)


def reference_logits(path: Path) -> list[float]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = encode_pairs(list(REFERENCE_PAIRS))
    logits = session.run(["logits"], dict(feeds))[0]
    return [round(float(x), 5) for x in np.asarray(logits).reshape(-1)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=Path("train/out/model.pt"))
    parser.add_argument("--pairs", type=Path, default=Path("train/out/pairs.jsonl"))
    args = parser.parse_args(argv)
    MODEL_PATH.parent.mkdir(parents=True, exist_ok=True)
    export(args.weights, MODEL_PATH)
    training = json.loads(args.weights.with_suffix(".json").read_text())
    data = json.loads(args.pairs.with_suffix(".meta.json").read_text())
    manifest = {"file": MODEL_PATH.name,
                "sha256": hashlib.sha256(MODEL_PATH.read_bytes()).hexdigest(),
                "bytes": MODEL_PATH.stat().st_size,
                "recipe": "make train (train/pairs.py, train/finetune.py, train/export.py)",
                "data": {"set": "realtimeqa-train", **data}, "training": training,
                "reference_logits": reference_logits(MODEL_PATH)}
    MANIFEST_PATH.write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps({k: manifest[k] for k in ("file", "sha256", "bytes")}))


if __name__ == "__main__":
    main()
