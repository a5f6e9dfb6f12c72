"""CUDA against the CPU, and the service on CUDA: what ``make gpu-check`` runs with ``DEVICE=cuda``; skipped on the CPU.

- Parity: the same texts through the program on the CPU and on ``DEVICE``: sentiment
  probabilities within ``SENTIMENT_ATOL``; translations (``GPU_DTYPE``, float16 by
  default) with the same tokens for at least ``TOKEN_AGREEMENT`` of the sentences,
  and the scores of those within ``SCORE_ATOL``. The measured figures are written to
  ``test-artifacts/gpu-parity.json`` (``make gpu-check`` prints them), so the
  tolerances, set before any GPU run, can be tightened to what a GPU measured.
- The service started with ``DEVICE=cuda``: ``/models`` reports the device, ``/sentiment``
  and ``/translate`` answer, concurrent requests share model calls (the ``lstm_batch_items``
  histogram: fewer sentiment batches than requests; more than one live text per decoder call).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from loadtests.texts import CAPTIONS, REVIEWS
from models.translation.translate import translate
from service.inference import load_sentiment, load_translation_model

from .conftest import OUT, metric, start_server
from .devices import DEVICE, GPU_DTYPE, ON_CUDA

pytestmark = pytest.mark.skipif(not ON_CUDA, reason="DEVICE is not cuda: make gpu-check runs these on a GPU")

SENTIMENT_ATOL = 5e-3  # fp32 on both; cuDNN's LSTM may use TF32 on the GPU
TOKEN_AGREEMENT = {"float32": 0.95, "float16": 0.85}  # share of sentences decoded to the same tokens as on the CPU
SCORE_ATOL = {"float32": 5e-3, "float16": 3e-2}  # length-normalised log-probability, sentences with the same tokens
PARITY = OUT / "gpu-parity.json"


def record(key: str, value: dict[str, Any]) -> None:
    """Add the measured figures under ``key`` to test-artifacts/gpu-parity.json."""
    PARITY.parent.mkdir(parents=True, exist_ok=True)
    figures = json.loads(PARITY.read_text()) if PARITY.is_file() else {}
    PARITY.write_text(json.dumps({**figures, key: value}, indent=1) + "\n")


def test_sentiment_probabilities_match_the_cpu() -> None:
    cpu, gpu = load_sentiment(device="cpu"), load_sentiment(device=DEVICE)
    texts = REVIEWS * 2  # a batch of 128: the largest the service forms by default
    a, b = cpu.predict(texts), gpu.predict(texts)
    diffs = [abs(x["probabilities"][label] - y["probabilities"][label]) for x, y in zip(a, b, strict=True) for label in cpu.labels]
    record("sentiment", {"device": gpu.device, "texts": len(texts), "max_abs_diff": max(diffs), "mean_abs_diff": sum(diffs) / len(diffs)})
    assert max(diffs) <= SENTIMENT_ATOL
    assert [x["label"] for x in a if x["confidence"] > 0.5 + SENTIMENT_ATOL] == [
        y["label"] for x, y in zip(a, b, strict=True) if x["confidence"] > 0.5 + SENTIMENT_ATOL
    ]


def test_translations_match_the_cpu() -> None:
    cpu = load_translation_model(device="cpu")
    gpu = load_translation_model(device=DEVICE, gpu_dtype=GPU_DTYPE)
    assert gpu.dtype == GPU_DTYPE
    figures: dict[str, Any] = {"device": gpu.device, "dtype": gpu.dtype}
    for target in ("de", "fr"):
        for beam in (1, 4):
            a = translate(cpu.program, cpu.tok, CAPTIONS, [target] * len(CAPTIONS), beam)
            b = translate(gpu.program, gpu.tok, CAPTIONS, [target] * len(CAPTIONS), beam)
            same = [(x, y) for x, y in zip(a, b, strict=True) if x.target_tokens == y.target_tokens]
            agreement = len(same) / len(a)
            score_diff = max((abs(x.score - y.score) for x, y in same), default=0.0)
            figures[f"{target}:{beam}"] = {"sentences": len(a), "same_tokens": agreement, "max_score_diff": score_diff}
            record("translation", figures)
            assert agreement >= TOKEN_AGREEMENT[GPU_DTYPE], (target, beam, [(x.text, y.text) for x, y in zip(a, b, strict=True) if (x, y) not in same])
            assert score_diff <= SCORE_ATOL[GPU_DTYPE], (target, beam)


def test_the_service_on_cuda_answers_and_batches() -> None:
    server = start_server("gpu", DEVICE=DEVICE, GPU_DTYPE=GPU_DTYPE, WORKERS="1", MAX_LATENCY_MS="30000")
    try:
        models = httpx.get(f"{server.url}/models").json()["models"]
        assert {m["name"]: m["device"].split(":")[0] for m in models} == {"sentiment-bilstm": "cuda", "translator-lstm": "cuda"}
        assert metric(server, "lstm_gpu_memory_used_bytes") > 0

        r = httpx.post(f"{server.url}/sentiment", json={"texts": ["a gorgeous , witty , seductive movie .", "dull ."]})
        assert r.status_code == 200 and [x["label"] for x in r.json()] == ["positive", "negative"]
        r = httpx.post(f"{server.url}/translate", json={"texts": ["A dog runs."], "target": "de", "beam_size": 4, "alignment": True})
        assert r.status_code == 200 and r.json()[0]["translation"] and r.json()[0]["alignment"]["weights"]

        def post(path: str, body: dict[str, Any]) -> int:
            return httpx.post(f"{server.url}{path}", json=body, timeout=60).status_code

        n = 256
        before = metric(server, "lstm_batch_items_count", model="sentiment-bilstm")
        with ThreadPoolExecutor(64) as pool:
            codes = list(pool.map(lambda i: post("/sentiment", {"texts": [REVIEWS[i % len(REVIEWS)]]}), range(n)))
        assert codes == [200] * n
        batches = metric(server, "lstm_batch_items_count", model="sentiment-bilstm") - before
        assert 0 < batches < n, f"{n} concurrent one-text requests took {batches} sentiment batches"

        n = 48
        count, total = (metric(server, f"lstm_batch_items_{s}", model="translator-lstm") for s in ("count", "sum"))
        with ThreadPoolExecutor(n) as pool:
            codes = list(pool.map(lambda i: post("/translate", {"texts": [CAPTIONS[i % len(CAPTIONS)]], "target": "de", "beam_size": 4}), range(n)))
        assert codes == [200] * n
        calls = metric(server, "lstm_batch_items_count", model="translator-lstm") - count
        live = metric(server, "lstm_batch_items_sum", model="translator-lstm") - total
        assert live / calls > 1, f"{n} concurrent translations: {live / calls:.2f} live texts per decoder call"
    finally:
        server.stop()
