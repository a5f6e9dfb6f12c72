"""The BentoML service: ``POST /sentiment`` and ``POST /translate`` with adaptive batching, plus ``GET /models``.

    bentoml serve service.service:LSTMService --port 3000     (what ``make serve`` runs)

Request flow: JSON body -> pydantic validation (``service.schemas``) -> BentoML's
dispatcher merges the texts of concurrent requests (``service.batching``) ->
one TorchScript call per batch (``service.inference``) -> results cut back per
request. Settings: ``service.config``.
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Annotated, Any, TypeVar

import bentoml
import torch
from bentoml.validators import ContentType

from models.manifest import verify as verify_artifact
from service import batching, dispatcher  # noqa: F401  (batching registers the batching container)
from service.batching import Item
from service.config import settings
from service.http_guard import HTTPGuard, quiet_refusals
from service.inference import SentimentClassifier, TranslationModel, load_sentiment, load_translation_model
from service.metrics import get_metrics, resource_metrics_text
from service.models_app import models_app
from service.schemas import SentimentRequest, SentimentResult, TranslateRequest, TranslateResult

log = logging.getLogger("lstm_service")
dispatcher.install()  # batches form the moment the model is free (service.dispatcher)

# Fail fast: a missing, truncated or altered artifact stops `bentoml serve` here, with a message naming
# the file and the expected sha256, before any worker starts (a worker failing in __init__ is restarted forever).
for _artifact in (settings.sentiment_artifact, settings.translation_artifact):
    verify_artifact(_artifact)
_loaded: list[SentimentClassifier | TranslationModel] = []  # this worker's models, for GET /models

# A fixed media type: otherwise BentoML rebuilds the output type's JSON schema for every response (~17% of a worker).
T = TypeVar("T")
JSONList = Annotated[list[T], ContentType("application/json")]


def as_items(request: Any) -> list[Item]:
    """The texts a call works on: many requests' texts when batched (``service.batching``), one request's with BATCHING=off."""
    return request if settings.batching else [Item(t, request) for t in request.texts]


WARMUP_SENTIMENT = ["a gorgeous , witty , seductive movie .", "the plot is nothing but boilerplate clichés", "ok"]
WARMUP_TRANSLATE = "A man in a blue shirt is riding a bike."


@bentoml.asgi_app(models_app(lambda: [m.info() for m in _loaded]), path="/")
@bentoml.service(
    name="lstm_service",
    workers=settings.workers,
    threads=1,  # the model runs one batch at a time per worker; batching, not threads, gives throughput
    # The guard answers 504 at REQUEST_TIMEOUT_S and drops the request's texts; BentoML's own timeout is only a backstop.
    traffic={"timeout": settings.request_timeout_s + 5},
    http={"port": settings.port, "cors": {"enabled": False}},
    tracing={"excluded_urls": ["/sentiment", "/translate"]},  # no exporter is configured; the middleware cost ~12% of a worker
    logging={"access": {"enabled": False}},  # per-request log lines cost CPU on the hot path; the metrics cover traffic
)
class LSTMService:
    def __init__(self) -> None:
        torch.set_num_threads(settings.torch_threads)
        self.metrics = get_metrics()
        self.sentiment_model = load_sentiment(settings.sentiment_artifact, settings.device)
        self.translation_model = load_translation_model(settings.translation_artifact, settings.device)
        # Warm-up: the first calls of a TorchScript program run its profiling executor.
        targets = [t for _, t in self.translation_model.pairs]
        for _ in range(2):
            self.sentiment_model.predict(WARMUP_SENTIMENT)
            for beam in sorted({1, settings.default_beam_size}):
                self.translation_model.run([WARMUP_TRANSLATE] * len(targets), targets, beam)
        _loaded[:] = [self.sentiment_model, self.translation_model]
        for model in _loaded:
            m = model.meta
            self.metrics.model_info.labels(m["name"], m["task"], m["version"], model.sha256, model.device).set(1)
            log.info("loaded %s %s on %s with %d threads", m["name"], m["version"], model.device, settings.torch_threads)
        # The models, torch and BentoML leave ~10^6 objects that Python's oldest GC generation rescans now and then:
        # 200-270 ms pauses, the whole p99 at 64 connections. Freezing them after start-up exempts them (docs/performance.md).
        gc.collect()
        gc.freeze()
        self.metrics.workers_ready.set(1)
        self.ready = True

    def __is_ready__(self) -> bool:
        return getattr(self, "ready", False)

    def __metrics__(self, content: str) -> str:
        """GET /metrics: BentoML's and ours, plus the service's CPU, memory and GPU memory read now."""
        return content + resource_metrics_text(sorted({m.device for m in _loaded if m.device.startswith("cuda")}))

    @bentoml.api(route="/sentiment", batchable=settings.batching, max_batch_size=settings.max_batch_size, max_latency_ms=settings.max_latency_ms)
    def sentiment(self, request: SentimentRequest, /) -> JSONList[SentimentResult]:
        """Sentiment of each text: label, confidence and both class probabilities, in order."""
        items = as_items(request)
        if not items:
            return []  # every request of this batch was abandoned (service.http_guard)
        start = time.perf_counter()
        waits = {id(it.request): start - it.request._received for it in items}
        results, stats = self.sentiment_model.run([it.text for it in items], [it.request.explain for it in items])  # type: ignore[attr-defined]
        name = self.sentiment_model.meta["name"]
        self.metrics.observe_batch(name, stats, list(waits.values()))
        for r in results:
            self.metrics.predictions.labels(name, r["label"]).inc()
        return results  # type: ignore[return-value]

    @bentoml.api(route="/translate", batchable=settings.batching, max_batch_size=settings.max_batch_size, max_latency_ms=settings.max_latency_ms)
    def translate(self, request: TranslateRequest, /) -> JSONList[TranslateResult]:
        """Translate each text from `source` into `target`, with beam search of width `beam_size` (1 = greedy)."""
        items = as_items(request)
        if not items:
            return []  # every request of this batch was abandoned (service.http_guard)
        start = time.perf_counter()
        waits = {id(it.request): start - it.request._received for it in items}
        name = self.translation_model.meta["name"]
        results: list[Any] = [None] * len(items)
        # One program call per beam size; pairs mix freely (each row carries its target-language token).
        by_beam: dict[int, list[int]] = {}
        for i, it in enumerate(items):
            by_beam.setdefault(it.request.beam_size, []).append(i)  # type: ignore[attr-defined]
        for beam, idx in sorted(by_beam.items()):
            texts, targets = [items[i].text for i in idx], [items[i].request.target for i in idx]  # type: ignore[attr-defined]
            out, stats = self.translation_model.run(texts, targets, beam, [items[i].request.alignment for i in idx])  # type: ignore[attr-defined]
            for i, r in zip(idx, out, strict=True):
                results[i] = r
            self.metrics.observe_batch(name, stats, [])
            for n in stats.output_tokens:
                self.metrics.output_tokens.labels(name).observe(n)
        for w in waits.values():
            self.metrics.batch_wait_seconds.labels(name).observe(w)
        return results


quiet_refusals()  # refusals are counted in lstm_rejected_requests_total, not logged with a traceback each
LSTMService.add_asgi_middleware(  # type: ignore[attr-defined]  # the decorator returns a bentoml.Service
    HTTPGuard,
    paths=("/sentiment", "/translate"),
    max_in_flight=settings.max_in_flight,
    max_body_bytes=settings.max_body_bytes,
    retry_after_s=settings.retry_after_s,
    timeout_s=settings.request_timeout_s,
)
