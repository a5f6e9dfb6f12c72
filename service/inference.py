"""The Python API: the shipped models without HTTP or BentoML.

    from service.inference import load_sentiment
    clf = load_sentiment()                  # the shipped artifact unless a path is given
    clf.predict(["great film"])             # -> the same objects as POST /sentiment

The BentoML service is a thin layer over these classes, so a batch job, a
notebook and the HTTP API give the same numbers.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from models import torchscript
from models.manifest import ARTIFACTS_DIR, sha256_of
from models.manifest import verify as verify_artifact
from models.sentiment.model import pad_batch
from models.sentiment.tokenizer import Vocab, tokenize

MAX_TOKENS = 512  # a text longer than this (in words) is cut; MAX_TEXT_CHARS keeps requests well below


def resolve_device(device: str | None = None) -> str:
    """``auto``/None -> ``cuda`` when a GPU is visible, else ``cpu``; anything else is used as given."""
    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


@dataclass(frozen=True)
class BatchStats:
    """What one model call did, for metrics."""

    items: int
    tokens: list[int]  # per item, after truncation
    padded_tokens: int  # items x longest
    seconds: float

    @property
    def padding_ratio(self) -> float:
        return 1.0 - sum(self.tokens) / self.padded_tokens if self.padded_tokens else 0.0


class SentimentClassifier:
    """A loaded sentiment program: texts in, label and probabilities out."""

    def __init__(self, program: torch.jit.ScriptModule, vocab: Vocab, meta: dict[str, Any], sha256: str, device: str) -> None:
        self.program, self.vocab, self.meta, self.sha256, self.device = program, vocab, meta, sha256, device
        self.labels: list[str] = list(meta["labels"])

    def encode(self, texts: list[str]) -> list[list[int]]:
        return [self.vocab.encode(tokenize(t)[:MAX_TOKENS]) for t in texts]

    @torch.inference_mode()
    def run(self, texts: list[str]) -> tuple[list[dict[str, Any]], BatchStats]:
        """One batched model call for all ``texts``; results in order, plus the batch's statistics."""
        seqs = self.encode(texts)
        ids, lengths = pad_batch(seqs)
        start = time.perf_counter()
        probs = self.program.probabilities(ids.to(self.device), lengths.to(self.device)).float().cpu()
        seconds = time.perf_counter() - start
        results = []
        for row in probs.tolist():
            best = max(range(len(row)), key=row.__getitem__)
            results.append(
                {
                    "label": self.labels[best],
                    "confidence": round(row[best], 6),
                    "probabilities": {label: round(p, 6) for label, p in zip(self.labels, row, strict=False)},
                }
            )
        stats = BatchStats(len(texts), [len(s) for s in seqs], ids.numel(), seconds)
        return results, stats

    def predict(self, texts: list[str]) -> list[dict[str, Any]]:
        """``[{"label", "confidence", "probabilities"}]``, one per text, in order."""
        return self.run(list(texts))[0] if texts else []

    def info(self) -> dict[str, Any]:
        """What ``GET /models`` says about this model."""
        m = self.meta
        return {
            "name": m["name"],
            "task": m["task"],
            "version": m["version"],
            "format": m["format"],
            "sha256": self.sha256,
            "parameters": m["parameters"],
            "labels": self.labels,
            "created_at": m["created_at"],
            "training_data": m["training_data"],
            "scores": m["scores"],
            "device": self.device,
        }


def load_sentiment(path: str | Path | None = None, device: str | None = None, verify: bool = True) -> SentimentClassifier:
    """Load a sentiment artifact (default: the shipped one), checking its sha256 against the manifest first."""
    path = Path(path) if path else ARTIFACTS_DIR / "sentiment-bilstm.pt"
    sha = verify_artifact(path) if verify else sha256_of(path)
    device = resolve_device(device)
    program, files = torchscript.load(path, ["vocab.json", "meta.json"], device)
    program.eval()
    return SentimentClassifier(program, Vocab.from_json(files["vocab.json"]), json.loads(files["meta.json"]), sha, device)
