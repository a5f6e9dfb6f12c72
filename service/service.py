"""The BentoML service: ``POST /sentiment`` with adaptive batching, plus ``GET /models``.

    bentoml serve service.service:LSTMService --port 3000     (what ``make serve`` runs)

Request flow: JSON body -> pydantic validation (``service.schemas``) -> BentoML's
dispatcher merges the texts of concurrent requests (``service.batching``) ->
one TorchScript call per batch (``service.inference``) -> results cut back per
request. Settings: ``service.config``.
"""

from __future__ import annotations

import logging
import time

import bentoml
import torch

from service import batching  # noqa: F401  (registers the batching container)
from service.batching import Item
from service.config import settings
from service.http_guard import HTTPGuard
from service.inference import SentimentClassifier, load_sentiment
from service.metrics import get_metrics
from service.models_app import models_app
from service.schemas import SentimentRequest, SentimentResult

log = logging.getLogger("lstm_service")
_loaded: list[SentimentClassifier] = []  # this worker's models, for GET /models

WARMUP_TEXTS = ["a gorgeous , witty , seductive movie .", "the plot is nothing but boilerplate clichés", "ok"]


@bentoml.asgi_app(models_app(lambda: [m.info() for m in _loaded]), path="/")
@bentoml.service(
    name="lstm_service",
    workers=settings.workers,
    threads=1,  # the model runs one batch at a time per worker; batching, not threads, gives throughput
    traffic={"timeout": settings.request_timeout_s},
    http={"port": settings.port, "cors": {"enabled": False}},
    logging={"access": {"enabled": False}},  # access logs cost ~10% throughput; metrics cover traffic
)
class LSTMService:
    def __init__(self) -> None:
        torch.set_num_threads(settings.torch_threads)
        self.metrics = get_metrics()
        self.sentiment_model = load_sentiment(settings.sentiment_artifact, settings.device)
        for model in (self.sentiment_model,):
            m = model.meta
            self.metrics.model_info.labels(m["name"], m["task"], m["version"], model.sha256, model.device).set(1)
            model.predict(WARMUP_TEXTS)  # warm-up: first TorchScript calls run the profiling executor
        _loaded[:] = [self.sentiment_model]
        self.ready = True
        log.info("loaded %s on %s with %d threads", self.sentiment_model.meta["name"], self.sentiment_model.device, settings.torch_threads)

    def __is_ready__(self) -> bool:
        return getattr(self, "ready", False)

    @bentoml.api(route="/sentiment", batchable=True, max_batch_size=settings.max_batch_size, max_latency_ms=settings.max_latency_ms)
    def sentiment(self, request: SentimentRequest, /) -> list[SentimentResult]:
        """Sentiment of each text: label, confidence and both class probabilities, in order."""
        items: list[Item] = request  # type: ignore[assignment]  # batched: the texts of many requests
        start = time.perf_counter()
        waits = {id(it.request): start - it.request._received for it in items}
        results, stats = self.sentiment_model.run([it.text for it in items])
        name = self.sentiment_model.meta["name"]
        self.metrics.observe_batch(name, stats, list(waits.values()))
        for r in results:
            self.metrics.predictions.labels(name, r["label"]).inc()
        return results  # type: ignore[return-value]


LSTMService.add_asgi_middleware(  # type: ignore[attr-defined]  # the decorator returns a bentoml.Service
    HTTPGuard,
    paths=("/sentiment",),
    max_in_flight=settings.max_in_flight,
    max_body_bytes=settings.max_body_bytes,
    retry_after_s=settings.retry_after_s,
)
