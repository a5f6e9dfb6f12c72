"""The service's own Prometheus metrics (next to BentoML's ``bentoml_service_*``).

Created inside the worker, after BentoML has set ``PROMETHEUS_MULTIPROC_DIR``:
``prometheus_client`` picks single- or multi-process mode when first imported,
so nothing here imports it at module level.

| metric | type | labels | meaning |
| --- | --- | --- | --- |
| lstm_model_info | gauge (1) | model, task, version, sha256, device | which artifact is loaded |
| lstm_inference_seconds | histogram | model | model time per batch |
| lstm_batch_items | histogram | model | texts per batch |
| lstm_batch_tokens | histogram | model | real (unpadded) tokens per batch |
| lstm_batch_padding_ratio | histogram | model | padding share of the batch tensor |
| lstm_batch_wait_seconds | histogram | model | time a request waited before its batch ran |
| lstm_input_tokens | histogram | model | tokens per input text |
| lstm_output_tokens | histogram | model | tokens per translation (with </s>) |
| lstm_predictions_total | counter | model, label | sentiment predictions by label |
| lstm_rejected_requests_total | counter | endpoint, reason | requests refused: invalid_request, body_too_large, overloaded, shed, timeout |
"""

from __future__ import annotations

from typing import Any

_TIME = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_COUNT = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_TOKENS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
_RATIO = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.model_info = Gauge("lstm_model_info", "Loaded model artifact (value 1)", ["model", "task", "version", "sha256", "device"], multiprocess_mode="max")
        self.inference_seconds = Histogram("lstm_inference_seconds", "Model inference time per batch", ["model"], buckets=_TIME)
        self.batch_items = Histogram("lstm_batch_items", "Texts per model batch", ["model"], buckets=_COUNT)
        self.batch_tokens = Histogram("lstm_batch_tokens", "Real (unpadded) tokens per model batch", ["model"], buckets=_TOKENS)
        self.batch_padding_ratio = Histogram("lstm_batch_padding_ratio", "Share of padding in the batch tensor", ["model"], buckets=_RATIO)
        self.batch_wait_seconds = Histogram("lstm_batch_wait_seconds", "Time a request waited before its batch ran", ["model"], buckets=_TIME)
        self.input_tokens = Histogram("lstm_input_tokens", "Tokens per input text", ["model"], buckets=_TOKENS)
        self.output_tokens = Histogram("lstm_output_tokens", "Tokens per translation output", ["model"], buckets=_TOKENS)
        self.predictions = Counter("lstm_predictions", "Sentiment predictions by label", ["model", "label"])
        self.rejected = Counter("lstm_rejected_requests", "Requests refused, by reason", ["endpoint", "reason"])

    def observe_batch(self, model: str, stats: Any, waits: list[float]) -> None:
        """Record one model call (``stats``: a ``service.inference.BatchStats``) and its requests' waits."""
        self.inference_seconds.labels(model).observe(stats.seconds)
        self.batch_items.labels(model).observe(stats.items)
        self.batch_tokens.labels(model).observe(sum(stats.tokens))
        self.batch_padding_ratio.labels(model).observe(stats.padding_ratio)
        for n in stats.tokens:
            self.input_tokens.labels(model).observe(n)
        for w in waits:
            self.batch_wait_seconds.labels(model).observe(w)


_metrics: Metrics | None = None


def get_metrics() -> Metrics:
    """The worker's one ``Metrics`` (created on first use, inside the worker)."""
    global _metrics
    if _metrics is None:
        _metrics = Metrics()
    return _metrics
