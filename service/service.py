"""The BentoML service: ``POST /sentiment`` and ``POST /translate``, each model on its own thread, plus ``GET /models``.

    bentoml serve service.service:LSTMService --port 3000     (what ``make serve`` runs)

Request flow, top to bottom:

    HTTP guard (``service.http_guard``: admission, body limit, deadline; it records the request as a ``Call``)
    -> pydantic validation (``service.schemas``)
    -> the API method below hands the request and its ``Call`` (read from the ASGI scope) to its model's batcher
    -> the model's own thread batches the texts of concurrent requests and runs the TorchScript program:
       sentiment (``service.sentiment_batcher``): what waits when the model is free is the next batch;
       translation (``service.translation_batcher``): texts join and leave a running decode step by step (short requests in a lane of their own)
    -> results, one per text, in order.

Each worker process (``WORKERS``, one per core by default) holds both models and
one thread per model, so a sentiment request never waits behind a translation;
each worker accepts connections on its own socket (``service.listener``), so
the kernel spreads connections over the workers. Settings: ``service.config``.
"""

from __future__ import annotations

import gc
import logging
from typing import Annotated, Any, TypeVar, cast

import bentoml
import torch
from bentoml.validators import ContentType

from models.manifest import verify as verify_artifact
from service import listener, priority, warmup
from service.auth import APIKeyAuth
from service.config import settings
from service.http_guard import HTTPGuard, call_of, quiet_refusals
from service.inference import SentimentClassifier, TranslationModel, load_sentiment, load_translation_model
from service.metrics import get_metrics, resource_metrics_text
from service.models_app import models_app
from service.schemas import SentimentRequest, SentimentResult, TranslateRequest, TranslateResult
from service.sentiment_batcher import SentimentBatcher
from service.translation_batcher import TranslationBatcher

log = logging.getLogger("lstm_service")
listener.install()  # each worker accepts on its own SO_REUSEPORT socket (service.listener)

# Fail fast: a missing, truncated or altered artifact stops `bentoml serve` here, with a message naming
# the file and the expected sha256, before any worker starts (a worker failing in __init__ is restarted forever).
for _artifact in (settings.sentiment_artifact, settings.translation_artifact):
    verify_artifact(_artifact)
_loaded: list[SentimentClassifier | TranslationModel] = []  # this worker's models, for GET /models

# A fixed media type: otherwise BentoML rebuilds the output type's JSON schema for every response (~17% of a worker).
T = TypeVar("T")
JSONList = Annotated[list[T], ContentType("application/json")]


@bentoml.asgi_app(models_app(lambda: [m.info() for m in _loaded]), path="/")
@bentoml.service(
    name="lstm_service",
    workers=settings.workers,
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
        sentiment = load_sentiment(settings.sentiment_artifact, settings.device)
        translation = load_translation_model(settings.translation_artifact, settings.device, gpu_dtype=settings.gpu_dtype)
        # Warm-up (service/warmup.py): the profiling executor's first calls; on CUDA the fuser's kernels for the shapes to come.
        warmup.warm_up(sentiment, translation, warmup.plan(translation.device, settings.default_beam_size, settings.max_beam_size, settings.max_batch_size))
        _loaded[:] = [sentiment, translation]
        for model in _loaded:
            m = model.meta
            self.metrics.model_info.labels(m["name"], m["task"], m["version"], model.sha256, model.device).set(1)
            log.info("loaded %s %s on %s (%s) with %d threads", m["name"], m["version"], model.device, model.dtype, settings.torch_threads)
        max_wait_s = settings.max_latency_ms / 1000
        # Which model goes first when both are busy (TRANSLATION_PRIORITY, service/priority.py): this thread is the event loop.
        p = settings.translation_priority
        self.sentiment_batcher = SentimentBatcher(
            sentiment, self.metrics, settings.max_batch_size, max_wait_s, settings.batching, priority.http_and_sentiment_nice(p)
        )
        self.translation_batcher = TranslationBatcher(
            translation, self.metrics, settings.max_batch_size, max_wait_s, settings.batching, priority.translation_nice(p)
        )
        priority.lower_this_thread(priority.http_and_sentiment_nice(p))  # after both threads started: they set their own
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

    @bentoml.api(route="/sentiment")
    async def sentiment(self, request: SentimentRequest, /, ctx: bentoml.Context) -> JSONList[SentimentResult]:
        """Sentiment of each text: label, confidence and both class probabilities, in order."""
        results: list[Any] = await self.sentiment_batcher.submit(request, call_of(ctx.request.scope))
        return results

    @bentoml.api(route="/translate")
    async def translate(self, request: TranslateRequest, /, ctx: bentoml.Context) -> JSONList[TranslateResult]:
        """Translate each text from `source` into `target`, with beam search of width `beam_size` (1 = greedy)."""
        results: list[Any] = await self.translation_batcher.submit(request, call_of(ctx.request.scope))
        return results


SERVICE = cast("bentoml.Service[LSTMService]", LSTMService)  # what the decorators above made of the class

quiet_refusals()  # refusals are counted in lstm_rejected_requests_total, not logged with a traceback each
if settings.api_keys or settings.metrics_token:  # first added, outermost: a request without its key goes no further
    SERVICE.add_asgi_middleware(APIKeyAuth, api_keys=settings.api_keys, metrics_token=settings.metrics_token)
SERVICE.add_asgi_middleware(
    HTTPGuard,
    paths=("/sentiment", "/translate"),
    max_in_flight=settings.max_in_flight,
    max_body_bytes=settings.max_body_bytes,
    retry_after_s=settings.retry_after_s,
    timeout_s=settings.request_timeout_s,
    auth=bool(settings.api_keys),
)
