"""The Python API: the shipped models without HTTP or BentoML.

    from service.inference import load_sentiment, load_translator
    clf = load_sentiment()                  # the shipped artifact unless a path is given
    clf.predict(["great film"])             # -> the same objects as POST /sentiment
    tr = load_translator("en", "de")
    tr.translate(["A dog runs."], beam_size=4)   # -> the same objects as POST /translate

The BentoML service is a thin layer over these classes, so a batch job, a
notebook and the HTTP API give the same numbers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from models import torchscript
from models.manifest import ARTIFACTS_DIR, sha256_of
from models.manifest import verify as verify_artifact
from models.sentiment.explain import explain as explain_texts
from models.sentiment.model import pad_batch
from models.sentiment.tokenizer import Vocab, tokenize
from models.translation.tokenizer import SubwordTokenizer
from models.translation.translate import Translation, translate, translate_all

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
    output_tokens: list[int] = field(default_factory=list)  # per item (translation)

    @property
    def padding_ratio(self) -> float:
        return 1.0 - sum(self.tokens) / self.padded_tokens if self.padded_tokens else 0.0


def model_info(meta: dict[str, Any], sha256: str, device: str, **extra: Any) -> dict[str, Any]:
    """What ``GET /models`` says about a loaded artifact: its metadata, sha256 and device."""
    keys = ("name", "task", "version", "format", "parameters", "created_at", "training_data", "scores")
    return {**{k: meta[k] for k in keys}, "sha256": sha256, "device": device, **extra}


class SentimentClassifier:
    """A loaded sentiment program: texts in, label and probabilities out."""

    def __init__(self, program: torch.jit.ScriptModule, vocab: Vocab, meta: dict[str, Any], sha256: str, device: str) -> None:
        self.program, self.vocab, self.meta, self.sha256, self.device = program, vocab, meta, sha256, device
        self.labels: list[str] = list(meta["labels"])

    @property
    def dtype(self) -> str:
        """The weights' dtype (``float32``: stored and run so on every device)."""
        return str(next(self.program.parameters()).dtype).removeprefix("torch.")

    def encode(self, texts: list[str]) -> list[list[int]]:
        return [self.vocab.encode(tokenize(t)[:MAX_TOKENS]) for t in texts]

    @torch.inference_mode()
    def run(self, texts: list[str], explain: bool | Sequence[bool] = False) -> tuple[list[dict[str, Any]], BatchStats]:
        """One batched model call for all ``texts``; results in order, plus the batch's statistics.

        ``explain`` (one flag, or one per text) adds an ``explanation`` to those results,
        computed in one more batched call (``models.sentiment.explain``); the others are untouched.
        """
        seqs = self.encode(texts)
        ids, lengths = pad_batch(seqs)
        start = time.perf_counter()
        probs = self.program.probabilities(ids.to(self.device), lengths.to(self.device)).float().cpu()
        seconds = time.perf_counter() - start
        rows = probs.tolist()
        results = []
        for row in rows:
            best = max(range(len(row)), key=row.__getitem__)
            results.append(
                {
                    "label": self.labels[best],
                    "confidence": round(row[best], 6),
                    "probabilities": {label: round(p, 6) for label, p in zip(self.labels, row, strict=False)},
                }
            )
        flags = [explain] * len(texts) if isinstance(explain, bool) else list(explain)
        if any(flags):
            start = time.perf_counter()
            idx = [i for i, f in enumerate(flags) if f]
            words = [tokenize(texts[i])[:MAX_TOKENS] for i in idx]
            out = explain_texts(self.program.probabilities, [seqs[i] for i in idx], words, [rows[i] for i in idx], self.labels, self.device)
            for i, e in zip(idx, out, strict=True):
                results[i]["explanation"] = e.to_dict()
            seconds += time.perf_counter() - start
        stats = BatchStats(len(texts), [len(s) for s in seqs], ids.numel(), seconds)
        return results, stats

    def predict(self, texts: list[str], explain: bool = False) -> list[dict[str, Any]]:
        """``[{"label", "confidence", "probabilities"}]``, one per text, in order; with ``explain``,
        each also has an ``explanation`` (tokens, occlusion, trajectory: see ``models.sentiment.explain``)."""
        return self.run(list(texts), explain)[0] if texts else []

    def info(self) -> dict[str, Any]:
        """What ``GET /models`` says about this model."""
        return model_info(self.meta, self.sha256, self.device, labels=self.labels)


def load_sentiment(path: str | Path | None = None, device: str | None = None, verify: bool = True) -> SentimentClassifier:
    """Load a sentiment artifact (default: the shipped one), checking its sha256 against the manifest first."""
    path = Path(path) if path else ARTIFACTS_DIR / "sentiment-bilstm.pt"
    sha = verify_artifact(path) if verify else sha256_of(path)
    device = resolve_device(device)
    program, files = torchscript.load(path, ["vocab.json", "meta.json"], device)
    program.eval()
    return SentimentClassifier(program, Vocab.from_json(files["vocab.json"]), json.loads(files["meta.json"]), sha, device)


class TranslationModel:
    """A loaded translation program (one or more language pairs): encoder, decoder and beam search in one call."""

    def __init__(self, program: torch.jit.ScriptModule, tok: SubwordTokenizer, meta: dict[str, Any], sha256: str, device: str) -> None:
        self.program, self.tok, self.meta, self.sha256, self.device = program, tok, meta, sha256, device
        self.pairs: list[tuple[str, str]] = [(s, t) for s, t in meta["pairs"]]

    @property
    def dtype(self) -> str:
        """The weights' dtype: ``float32``, or ``float16`` on CUDA (``GPU_DTYPE``)."""
        return str(next(self.program.parameters()).dtype).removeprefix("torch.")

    def supports(self, source: str, target: str) -> bool:
        return (source, target) in self.pairs

    def run(self, texts: list[str], targets: list[str], beam_size: int, alignment: bool | Sequence[bool] = False) -> tuple[list[dict[str, Any]], BatchStats]:
        """Translate ``texts[i]`` into ``targets[i]`` (one beam size) in one program call.

        ``alignment`` (one flag, or one per text) adds an ``alignment`` to those results: the
        subword tokens of source and translation and the attention weights, one row per target token.
        """
        start = time.perf_counter()
        out = translate(self.program, self.tok, texts, targets, beam_size, self.device, alignment)
        seconds = time.perf_counter() - start
        results = [translation_result(tr) for tr in out]
        src_lens = [len(tr.source_tokens) for tr in out]
        stats = BatchStats(len(texts), src_lens, len(texts) * max(src_lens, default=0), seconds, [len(tr.target_tokens) for tr in out])
        return results, stats

    def translate_all(self, texts: list[str], target: str, beam_size: int) -> list[str]:
        """Many sentences in length-sorted batches (evaluation)."""
        return translate_all(self.program, self.tok, texts, target, beam_size, device=self.device)

    def info(self) -> dict[str, Any]:
        """What ``GET /models`` says about this model."""
        return model_info(self.meta, self.sha256, self.device, pairs=[{"source": s, "target": t} for s, t in self.pairs])


def translation_result(tr: Translation) -> dict[str, Any]:
    """What ``POST /translate`` answers for one text: ``{"translation"}``, and ``"alignment"`` when the attention was kept."""
    r: dict[str, Any] = {"translation": tr.text}
    if tr.attention is not None:
        weights = [[round(w, 6) for w in row] for row in tr.attention]
        r["alignment"] = {"source_tokens": tr.source_tokens, "target_tokens": tr.target_tokens, "weights": weights}
    return r


class Translator:
    """A translation model bound to one language pair: the contract's ``load_translator(source, target)``."""

    def __init__(self, model: TranslationModel, source: str, target: str) -> None:
        self.model, self.source, self.target = model, source, target

    def translate(self, texts: list[str], beam_size: int = 4, alignment: bool = False) -> list[dict[str, Any]]:
        """``[{"translation": str}]``, one per text, in order; with ``alignment``, each also has an
        ``alignment``: ``{"source_tokens", "target_tokens", "weights"}`` (attention, target x source)."""
        texts = list(texts)
        return self.model.run(texts, [self.target] * len(texts), beam_size, alignment)[0] if texts else []


def translation_dtype(device: str, gpu_dtype: str = "float16") -> torch.dtype:
    """The translator's weights are stored in fp16. On the CPU they decode in fp32 (fp16 is faster for one greedy
    sentence but 2.3-3x slower from 8 captions at beam 4: docs/performance.md); on CUDA in ``gpu_dtype``
    (``GPU_DTYPE``): fp16 as stored, or fp32. The search keeps its scores in fp32 either way (``log_softmax`` of
    the logits cast to fp32, ``models/translation/search.py``)."""
    if gpu_dtype not in ("float16", "float32"):
        raise ValueError(f"gpu_dtype must be float16 or float32, not {gpu_dtype!r}")
    return torch.float16 if device.startswith("cuda") and gpu_dtype == "float16" else torch.float32


def load_translation_model(path: str | Path | None = None, device: str | None = None, verify: bool = True, gpu_dtype: str = "float16") -> TranslationModel:
    """Load a translation artifact (default: the shipped one), checking its sha256 against the manifest first;
    its weights in ``translation_dtype(device, gpu_dtype)``."""
    path = Path(path) if path else ARTIFACTS_DIR / "translator-lstm.pt"
    sha = verify_artifact(path) if verify else sha256_of(path)
    device = resolve_device(device)
    program, files = torchscript.load(path, ["spm.model", "meta.json"], device)
    program.to(translation_dtype(device, gpu_dtype)).eval()
    return TranslationModel(program, SubwordTokenizer(files["spm.model"]), json.loads(files["meta.json"]), sha, device)


def load_translator(
    source: str = "en", target: str = "de", path: str | Path | None = None, device: str | None = None, gpu_dtype: str = "float16"
) -> Translator:
    """The shipped translator for ``source`` -> ``target``; ValueError names the supported pairs otherwise."""
    model = load_translation_model(path, device, gpu_dtype=gpu_dtype)
    if not model.supports(source, target):
        raise ValueError(f"unsupported language pair {source}->{target}; supported: {', '.join(f'{s}->{t}' for s, t in model.pairs)}")
    return Translator(model, source, target)
