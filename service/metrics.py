"""The service's own Prometheus metrics (next to BentoML's ``bentoml_service_*``).

Created inside the worker, after BentoML has set ``PROMETHEUS_MULTIPROC_DIR``:
``prometheus_client`` picks single- or multi-process mode when first imported,
so nothing here imports it at module level.

| metric | type | labels | meaning |
| --- | --- | --- | --- |
| lstm_model_info | gauge (1) | model, task, version, sha256, device | which artifact is loaded |
| lstm_workers_ready | gauge | | worker processes that have loaded the models (summed over live workers; = WORKERS when all serve) |
| lstm_inference_seconds | histogram | model | model time per batch (translator: per call of its running decode) |
| lstm_batch_items | histogram | model | texts per batch (translator: live texts per decode call) |
| lstm_batch_tokens | histogram | model | real (unpadded) tokens per batch |
| lstm_batch_padding_ratio | histogram | model | padding share of the batch tensor |
| lstm_batch_wait_seconds | histogram | model | time a request waited before its batch ran (translator: before it joined the decode) |
| lstm_input_tokens | histogram | model | tokens per input text (counted once per text that reaches the model) |
| lstm_output_tokens | histogram | model | tokens per translation (with </s>) |
| lstm_predictions_total | counter | model, label | sentiment predictions by label |
| lstm_rejected_requests_total | counter | endpoint, reason | refused: invalid_request, body_too_large, overloaded, shed, timeout, disconnected, unauthorized |

Read at scrape time and appended to ``GET /metrics`` (``resource_metrics_text``; in BentoML's
multi-process mode ``prometheus_client`` exports no ``process_*`` metrics of its own):

| metric | type | labels | meaning |
| --- | --- | --- | --- |
| process_cpu_seconds_total | counter | | CPU time of the whole service: the `bentoml serve` process and its workers |
| process_resident_memory_bytes | gauge | | resident memory of the same processes, summed |
| process_start_time_seconds | gauge | | start time of the `bentoml serve` process (Unix time) |
| lstm_gpu_memory_used_bytes | gauge | device | memory in use on a CUDA device the models run on (all processes) |
| lstm_gpu_memory_total_bytes | gauge | device | that device's memory |
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
        self.workers_ready = Gauge("lstm_workers_ready", "Worker processes that have loaded the models", multiprocess_mode="livesum")
        self.inference_seconds = Histogram("lstm_inference_seconds", "Model inference time per batch", ["model"], buckets=_TIME)
        self.batch_items = Histogram("lstm_batch_items", "Texts per model batch", ["model"], buckets=_COUNT)
        self.batch_tokens = Histogram("lstm_batch_tokens", "Real (unpadded) tokens per model batch", ["model"], buckets=_TOKENS)
        self.batch_padding_ratio = Histogram("lstm_batch_padding_ratio", "Share of padding in the batch tensor", ["model"], buckets=_RATIO)
        self.batch_wait_seconds = Histogram("lstm_batch_wait_seconds", "Time a request waited before its batch ran", ["model"], buckets=_TIME)
        self.input_tokens = Histogram("lstm_input_tokens", "Tokens per input text", ["model"], buckets=_TOKENS)
        self.output_tokens = Histogram("lstm_output_tokens", "Tokens per translation output", ["model"], buckets=_TOKENS)
        self.predictions = Counter("lstm_predictions", "Sentiment predictions by label", ["model", "label"])
        self.rejected = Counter("lstm_rejected_requests", "Requests refused, by reason", ["endpoint", "reason"])

    def observe_batch(self, model: str, stats: Any) -> None:
        """Record one model call (``stats``: a ``service.inference.BatchStats``)."""
        self.inference_seconds.labels(model).observe(stats.seconds)
        self.batch_items.labels(model).observe(stats.items)
        self.batch_tokens.labels(model).observe(sum(stats.tokens))
        self.batch_padding_ratio.labels(model).observe(stats.padding_ratio)
        for n in stats.tokens:
            self.input_tokens.labels(model).observe(n)

    def observe_decode_call(self, model: str, seconds: float, source_lengths: list[int]) -> None:
        """Record one call of the translator's running decode: its time and the live texts' source tokens."""
        self.inference_seconds.labels(model).observe(seconds)
        self.batch_items.labels(model).observe(len(source_lengths))
        self.batch_tokens.labels(model).observe(sum(source_lengths))
        padded = len(source_lengths) * max(source_lengths, default=0)
        self.batch_padding_ratio.labels(model).observe(1.0 - sum(source_lengths) / padded if padded else 0.0)


def resource_metrics_text(cuda_devices: list[str]) -> str:
    """The ``process_*`` and ``lstm_gpu_*`` metrics above, in Prometheus text format, read now."""
    import psutil
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.registry import Collector

    worker = psutil.Process()
    root = worker.parent()
    if root is None or not any("bentoml" in part for part in root.cmdline()):
        root = worker  # not under `bentoml serve`: this process alone
    procs = [root, *root.children(recursive=True)]
    cpu = rss = 0.0
    for proc in procs:
        try:
            with proc.oneshot():
                times = proc.cpu_times()
                cpu, rss = cpu + times.user + times.system, rss + proc.memory_info().rss
        except psutil.NoSuchProcess:  # a worker that just exited
            continue
    families: list[Any] = [
        CounterMetricFamily("process_cpu_seconds", "CPU time of the bentoml serve process and its workers, in seconds", value=cpu),
        GaugeMetricFamily("process_resident_memory_bytes", "Resident memory of the bentoml serve process and its workers, summed", value=rss),
        GaugeMetricFamily("process_start_time_seconds", "Start time of the bentoml serve process since the Unix epoch, in seconds", value=root.create_time()),
    ]
    if cuda_devices:
        import torch

        used = GaugeMetricFamily("lstm_gpu_memory_used_bytes", "Memory in use on the CUDA device (all processes)", labels=["device"])
        total = GaugeMetricFamily("lstm_gpu_memory_total_bytes", "Memory of the CUDA device", labels=["device"])
        for device in cuda_devices:
            free, size = torch.cuda.mem_get_info(device)
            used.add_metric([device], size - free)
            total.add_metric([device], size)
        families += [used, total]

    class ReadNow(Collector):
        def collect(self) -> list[Any]:
            return families

    registry = CollectorRegistry()
    registry.register(ReadNow())
    return generate_latest(registry).decode()


_metrics: Metrics | None = None


def get_metrics() -> Metrics:
    """The worker's one ``Metrics`` (created on first use, inside the worker)."""
    global _metrics
    if _metrics is None:
        _metrics = Metrics()
    return _metrics
