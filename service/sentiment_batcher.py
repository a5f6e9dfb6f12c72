"""The sentiment model's thread: whatever is waiting when the model is free becomes the next batch.

On a CPU the model runs one batch at a time, so waiting for company while it is
idle only adds latency; requests that arrive while it is busy gather in the
queue and form the next batch (up to ``MAX_BATCH_SIZE`` texts). Batch size
still adapts to load: one text alone, a full batch under pressure (Triton's
dynamic batcher with no queue delay does the same). Nothing polls: the thread
sleeps until a request arrives.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import torch

from service.http_guard import Call
from service.inference import SentimentClassifier
from service.jobs import JobQueue
from service.metrics import Metrics
from service.priority import lower_this_thread, name_this_thread
from service.schemas import SentimentRequest
from service.streams import on_own_stream

log = logging.getLogger("lstm_service")


class SentimentBatcher:
    def __init__(self, model: SentimentClassifier, metrics: Metrics, max_batch_size: int, max_wait_s: float, batching: bool = True, nice: int = 0) -> None:
        self.model, self.metrics = model, metrics
        self.nice = nice  # added to this thread's niceness (service/priority.py)
        self.max_batch_size = max_batch_size
        self.name = model.meta["name"]
        self.max_jobs = None if batching else 1  # BATCHING=off: one request per model call
        self.queue: JobQueue[SentimentRequest] = JobQueue(max_wait_s)
        self.thread = threading.Thread(target=self._run, name="sentiment-model", daemon=True)
        self.thread.start()

    async def submit(self, request: SentimentRequest, call: Call) -> list[dict[str, Any]]:
        """The request's results, in order, once its texts have been through the model."""
        return await self.queue.submit(request, call)

    def _run(self) -> None:
        name_this_thread("lstm-sentiment")
        lower_this_thread(self.nice)
        with on_own_stream(self.model.device), torch.inference_mode():
            while True:
                batch = self.queue.take(self.max_batch_size, block=True, max_jobs=self.max_jobs)
                start = time.perf_counter()
                for part in batch:
                    if part.start == 0:  # the request's first texts: its wait ends now
                        self.metrics.batch_wait_seconds.labels(self.name).observe(start - part.job.received)
                try:
                    texts = [t for part in batch for t in part.texts]
                    explain = [part.job.request.explain for part in batch for _ in range(part.stop - part.start)]
                    results, stats = self.model.run(texts, explain)
                except Exception as e:  # answer this batch's requests with the error; keep serving the next
                    log.exception("sentiment batch failed")
                    for part in batch:
                        part.job.fail(e)
                    continue
                self.metrics.observe_batch(self.name, stats)
                for r in results:
                    self.metrics.predictions.labels(self.name, r["label"]).inc()
                i = 0
                for part in batch:
                    for index in range(part.start, part.stop):
                        part.job.answer(index, results[i])
                        i += 1
