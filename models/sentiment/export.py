"""Export a trained BiLSTM checkpoint to the TorchScript serving artifact.

    python -m models.sentiment.export --checkpoint runs/sentiment/best.pt \
        --data-dir ../shared/data/sst2 [--out models/artifacts/sentiment-bilstm.pt]

The artifact is self-describing: inside the ``.pt`` are ``vocab.json`` (the
tokenizer's vocabulary) and ``meta.json`` (labels, version, created-at, training
data, configuration, parameter count and the dev accuracy measured here on the
scripted program). Its sha256 goes into ``models/artifacts/manifest.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

from models import torchscript
from models.manifest import ARTIFACTS_DIR, record
from models.sentiment.data import LABELS
from models.sentiment.evaluate import dev_accuracy
from models.sentiment.model import BiLSTMClassifier, BiLSTMConfig
from models.sentiment.tokenizer import Vocab
from models.training import load_checkpoint as read_checkpoint

NAME = "sentiment-bilstm"
VERSION = "1.0.0"


def load_trained(path: str | Path) -> tuple[BiLSTMClassifier, Vocab, BiLSTMConfig]:
    """A training checkpoint (tensors and plain data only: loads with ``weights_only=True``)."""
    ck = read_checkpoint(Path(path))
    cfg = BiLSTMConfig(**ck["config"])
    model = BiLSTMClassifier(cfg)
    model.load_state_dict(ck["model"])
    return model.eval(), Vocab(ck["vocab"][2:]), cfg


def export(model: BiLSTMClassifier, vocab: Vocab, out: Path, meta: dict[str, object]) -> None:
    program = torchscript.script(model.eval())
    torchscript.save(program, out, {"vocab.json": vocab.to_json(), "meta.json": json.dumps(meta, indent=2)})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data-dir", required=True, help="SST-2 folder, for the dev score recorded in the artifact")
    ap.add_argument("--out", default=str(ARTIFACTS_DIR / f"{NAME}.pt"))
    ap.add_argument("--notes", default="", help="how it was trained, recorded in the metadata")
    args = ap.parse_args()

    model, vocab, cfg = load_trained(args.checkpoint)
    meta: dict[str, object] = {
        "name": NAME,
        "task": "sentiment",
        "version": VERSION,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "format": "torchscript",
        "labels": list(LABELS),
        "tokenizer": "models.sentiment.tokenizer (SST-2 style words, lowercase)",
        "config": cfg.to_dict(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "training_data": "SST-2 (GLUE) train.tsv, 67,349 phrases",
        "notes": args.notes,
        "scores": [],
    }
    out = Path(args.out)
    export(model, vocab, out, meta)  # first pass: score the scripted program itself
    acc = dev_accuracy(out, args.data_dir)
    meta["scores"] = [{"dataset": "SST-2", "split": "dev", "metric": "accuracy", "value": round(acc, 4)}]
    export(model, vocab, out, meta)
    entry = record(out, {"name": NAME, "task": "sentiment", "version": VERSION, "scores": meta["scores"]})
    print(json.dumps(entry, indent=2))


if __name__ == "__main__":
    main()
