"""Baseline (c) of ``make bench``: the same models behind a minimal, unbatched FastAPI server.

    TORCH_THREADS=2 python -m uvicorn loadtests.baselines.fastapi_app:app --port 8001 --workers 1 --no-access-log

What a first FastAPI server for a model usually looks like: pydantic request
models, one model call per request with that request's texts, sync handlers
(FastAPI runs them in its thread pool), the project's Python API
(``service.inference``), one worker, ``TORCH_THREADS`` intra-op threads as the
service has. No batching across requests, no limits beyond the types.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from fastapi import FastAPI
from pydantic import BaseModel

from service.inference import load_sentiment, load_translation_model

torch.set_num_threads(int(os.environ.get("TORCH_THREADS") or os.cpu_count() or 1))
sentiment = load_sentiment(device=os.environ.get("DEVICE", "auto"))
translation = load_translation_model(device=os.environ.get("DEVICE", "auto"))
for _ in range(2):  # warm-up: TorchScript's profiling runs, as the service does before it is ready
    sentiment.predict(["a gorgeous , witty , seductive movie ."])
    translation.run(["A man in a blue shirt is riding a bike."] * 2, ["de", "fr"], 4)

app = FastAPI()


class SentimentRequest(BaseModel):
    texts: list[str]


class TranslateRequest(BaseModel):
    texts: list[str]
    source: str = "en"
    target: str
    beam_size: int = 4


@app.post("/sentiment")
def classify(request: SentimentRequest) -> list[dict[str, Any]]:
    return sentiment.predict(request.texts)


@app.post("/translate")
def translate(request: TranslateRequest) -> list[dict[str, Any]]:
    return translation.run(request.texts, [request.target] * len(request.texts), request.beam_size)[0]


@app.get("/readyz")
def readyz() -> str:
    return "ok"
