"""Train the BiLSTM sentiment classifier on SST-2.

    python -m models.sentiment.train --data-dir ../shared/data/sst2 --out runs/sentiment \
        [--teacher runs/teacher/model [runs/teacher-s1/model ...]]

Embeddings start from GloVe 6B-50d. With ``--teacher`` (a fine-tuned encoder from
``models.sentiment.teacher``) the loss adds distillation: the student matches the
teacher's logits (MSE) on the training phrases and on augmented sentences. Given
several teachers (an ensemble: other seeds or longer fine-tuning), it matches the
mean of their logits.

Resumable: ``{out}/last.pt`` is written every ``--checkpoint-minutes`` and at each
epoch end; rerunning the same command continues from it. ``{out}/best.pt`` holds the
best dev-accuracy weights (early stopping with ``--patience``); ``{out}/metrics.json``
the per-epoch history. Checkpoints hold only tensors and plain data and load with
``weights_only=True``.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from models.sentiment.augment import augmented
from models.sentiment.data import read_split
from models.sentiment.glove import glove_matrix, glove_words
from models.sentiment.model import BiLSTMClassifier, BiLSTMConfig, pad_batch
from models.sentiment.tokenizer import Vocab, tokenize
from models.training import batches_by_length, end_epoch, resume, save_checkpoint


@torch.no_grad()
def accuracy(model: BiLSTMClassifier, seqs: list[list[int]], labels: list[int], batch_size: int = 256) -> float:
    model.eval()
    correct = 0
    for s in range(0, len(seqs), batch_size):
        ids, lengths = pad_batch(seqs[s : s + batch_size])
        pred = model(ids, lengths).argmax(-1)
        correct += int((pred == torch.tensor(labels[s : s + batch_size])).sum())
    model.train()
    return correct / len(seqs)


def teacher_targets(out: Path, teachers: list[str], texts: list[list[str]]) -> torch.Tensor:
    """The mean of the teachers' logits for token lists; each teacher's are cached in ``{out}/teacher_logits-{i}.pt``."""
    from models.sentiment.teacher import teacher_logits

    joined = [" ".join(t).replace("<unk>", "[UNK]") for t in texts]
    each = []
    for i, teacher in enumerate(teachers):
        cache = out / f"teacher_logits-{i}.pt"
        cached = torch.load(cache, weights_only=True) if cache.exists() else None
        if cached is None or cached["teacher"] != str(teacher) or cached["logits"].size(0) != len(texts):
            cached = {"teacher": str(teacher), "logits": teacher_logits(joined, teacher)}
            torch.save(cached, cache)
        each.append(cached["logits"])
    return torch.stack(each).mean(0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True, help="folder with SST-2 train.tsv and dev.tsv")
    ap.add_argument("--out", default="runs/sentiment")
    ap.add_argument("--teacher", nargs="+", help="fine-tuned teacher folder(s) (enables distillation; several: their mean logits)")
    ap.add_argument("--augment-copies", type=int, default=4, help="augmented copies per training sentence (with --teacher)")
    ap.add_argument("--alpha", type=float, default=0.5, help="weight of the hard-label loss vs distillation")
    ap.add_argument("--glove-words", type=int, default=30000, help="frequent GloVe words added to the vocabulary")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--dropout", type=float, default=0.3)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--checkpoint-minutes", type=float, default=3.0)
    ap.add_argument("--limit", type=int, default=0, help="use only the first N training rows (smoke tests)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train = read_split(args.data_dir, "train")
    dev = read_split(args.data_dir, "dev")
    if args.limit:
        train = train[: args.limit]

    train_tok = [tokenize(e.text) for e in train]
    vocab = Vocab.build((" ".join(t) for t in train_tok), extra=glove_words(args.glove_words))
    cfg = BiLSTMConfig(vocab_size=len(vocab), hidden_dim=args.hidden, mlp_dim=args.hidden, dropout=args.dropout)
    torch.manual_seed(args.seed)
    model = BiLSTMClassifier(cfg)
    emb, hits = glove_matrix(vocab, cfg.embed_dim, args.seed)
    model.embed.weight.data.copy_(emb)
    print(f"vocab {len(vocab)} words, {hits} from GloVe; {sum(p.numel() for p in model.parameters()):,} parameters", flush=True)

    # Training set: phrases with hard labels (+ teacher logits), then augmented sentences (teacher logits only).
    texts, labels = list(train_tok), [e.label for e in train]
    soft: torch.Tensor | None = None
    if args.teacher:
        extra = augmented([t for t in train_tok if len(t) >= 3], vocab.itos[2 : 2 + 20000], args.augment_copies, args.seed)
        texts += extra
        labels += [-1] * len(extra)
        soft = teacher_targets(out, args.teacher, texts)
        print(f"distillation: {len(train)} phrases + {len(extra)} augmented sentences", flush=True)
    seqs = [vocab.encode(t) for t in texts]
    dev_seqs = [vocab.encode(tokenize(e.text)) for e in dev]
    dev_labels = [e.label for e in dev]

    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    last = out / "last.pt"
    state = resume(last, model, opt, {"epoch": 0, "batch": 0, "best_acc": 0.0, "bad_epochs": 0, "history": []})

    def save(path: Path) -> None:
        save_checkpoint(path, {"model": model.state_dict(), "opt": opt.state_dict(), "state": state, "config": cfg.to_dict(), "vocab": vocab.itos})

    lengths = [len(s) for s in seqs]
    total_batches = math.ceil(len(seqs) / args.batch_size)
    while state["epoch"] < args.epochs and state["bad_epochs"] < args.patience:
        epoch = state["epoch"]
        for g in opt.param_groups:
            g["lr"] = args.lr * 0.8**epoch
        batches = batches_by_length(lengths, args.batch_size, random.Random(args.seed * 1000 + epoch))
        torch.manual_seed(args.seed * 1000 + epoch + state["batch"])
        model.train()
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{args.epochs}", unit="batch", initial=state["batch"], total=total_batches)
        t_saved = time.monotonic()
        loss_sum, n = 0.0, 0
        for b in batches[state["batch"] :]:
            ids, lens = pad_batch([seqs[j] for j in b])
            y = torch.tensor([labels[j] for j in b])
            logits = model(ids, lens)
            hard = y >= 0
            loss = F.cross_entropy(logits[hard], y[hard]) if bool(hard.any()) else logits.sum() * 0.0
            if soft is not None:
                loss = args.alpha * loss * hard.float().mean() + (1 - args.alpha) * F.mse_loss(logits, soft[b])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            state["batch"] += 1
            loss_sum, n = loss_sum + loss.item(), n + 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss_sum / n:.4f}")
            if time.monotonic() - t_saved > 60 * args.checkpoint_minutes:
                save(last)
                t_saved = time.monotonic()
        bar.close()
        acc = accuracy(model, dev_seqs, dev_labels)
        end_epoch(state, out, "best_acc", acc, {"epoch": epoch + 1, "train_loss": loss_sum / max(n, 1), "dev_accuracy": acc}, save)
        print(f"epoch {epoch + 1}: dev accuracy {acc:.4f} (best {state['best_acc']:.4f})", flush=True)
    print(f"done: best dev accuracy {state['best_acc']:.4f}; weights in {out / 'best.pt'}")


if __name__ == "__main__":
    main()
