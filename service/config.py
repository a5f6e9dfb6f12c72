"""All service settings, read once from environment variables. Defaults are documented in README.md.

| variable | default | meaning |
| --- | --- | --- |
| PORT | 3000 | HTTP port (`make serve`, the image) |
| SENTIMENT_ARTIFACT | models/artifacts/sentiment-bilstm.pt | TorchScript sentiment program |
| TRANSLATION_ARTIFACT | models/artifacts/translator-lstm.pt | TorchScript translation program (all its pairs) |
| DEFAULT_BEAM_SIZE | 4 | beam size when a request gives none (1 = greedy) |
| MAX_BEAM_SIZE | 8 | largest beam a request may ask for |
| DEVICE | auto | `auto` (CUDA when available, else CPU), `cpu`, `cuda`, `cuda:1` |
| WORKERS | auto | BentoML worker processes; `auto`: one per CPU core (at most 4) on the CPU, 1 on a GPU (more on CUDA logs a warning) |
| GPU_DTYPE | float16 | the translator's weights on CUDA: `float16` (as stored) or `float32`; float32 on the CPU, and for sentiment everywhere |
| TORCH_THREADS | cores / WORKERS | intra-op threads per worker |
| MAX_TEXTS | 64 | texts per request |
| MAX_TEXT_CHARS | 2000 | characters per text |
| MAX_BODY_BYTES | 1048576 | request body size (413 above) |
| BATCHING | on | `off` runs each request alone (one request per model call or decode; for benchmarks and debugging) |
| MAX_BATCH_SIZE | 128 | texts per sentiment batch; texts decoded at once by the translator |
| MAX_LATENCY_MS | 2000 | batching latency budget; queued work older than this is shed (503) |
| REUSEPORT | on | `on`: each worker accepts on its own SO_REUSEPORT socket, the kernel spreads connections (`service/listener.py`) |
| TRANSLATION_PRIORITY | 5 | -19..19: p > 0 runs the event loop and sentiment thread p nice levels lower, p < 0 the translator (`service/priority.py`) |
| MAX_IN_FLIGHT | 256 | requests admitted per worker at once; more get 429 |
| REQUEST_TIMEOUT_S | 25 | per-request deadline (504 after it); also bounds the drain on SIGTERM, so keep it under the termination grace period |
| RETRY_AFTER_S | 1 | the `Retry-After` sent with 429/503 |
| MAX_TRANSLATE_WORK | 32000 | characters of all texts times `beam_size`, per translate request (decoding time grows with both) |
| MAX_EXPLAIN_TOKENS | 100 | sentiment tokens per request with `explain: true`, all texts together (the work grows as tokens squared) |
| API_KEYS | (none) | comma-separated API keys; when any is set (here or in API_KEYS_FILE), `/sentiment`, `/translate`, `/models` need `Bearer <key>` |
| API_KEYS_FILE | (none) | a file with one API key per line (`#` comments), e.g. a Kubernetes Secret or compose secret; added to API_KEYS |
| METRICS_TOKEN | (none) | when set, `GET /metrics` needs `Authorization: Bearer <METRICS_TOKEN>`; open otherwise |
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from models.manifest import ARTIFACTS_DIR

GPU_DTYPES = ("float16", "float32")


def _int(name: str, default: int, minimum: int = 1, maximum: int | None = None) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"environment variable {name}={raw!r} is not an integer") from None
    if value < minimum:
        raise SystemExit(f"environment variable {name}={raw!r} must be >= {minimum}")
    if maximum is not None and value > maximum:
        raise SystemExit(f"environment variable {name}={raw!r} must be <= {maximum}")
    return value


def _on_off(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in ("on", "off"):
        raise SystemExit(f"environment variable {name}={raw!r} must be 'on' or 'off'")
    return raw == "on"


def _choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in choices:
        raise SystemExit(f"environment variable {name}={raw!r} must be one of {', '.join(choices)}")
    return raw


@dataclass(frozen=True)
class Settings:
    port: int
    sentiment_artifact: Path
    translation_artifact: Path
    default_beam_size: int
    max_beam_size: int
    device: str
    gpu_dtype: str
    workers: int
    torch_threads: int
    max_texts: int
    max_text_chars: int
    max_body_bytes: int
    batching: bool
    max_batch_size: int
    max_latency_ms: int
    max_in_flight: int
    translation_priority: int
    reuseport: bool
    request_timeout_s: int
    retry_after_s: int
    max_translate_work: int
    max_explain_tokens: int
    api_keys: tuple[str, ...]
    metrics_token: str


def api_keys() -> tuple[str, ...]:
    """API_KEYS (comma-separated) and the lines of API_KEYS_FILE (blank lines and `#` comments skipped)."""
    keys = [k.strip() for k in os.environ.get("API_KEYS", "").split(",")]
    path = os.environ.get("API_KEYS_FILE", "").strip()
    if path:
        try:
            lines = Path(path).read_text().splitlines()
        except OSError as e:
            raise SystemExit(f"API_KEYS_FILE={path!r} cannot be read: {e.strerror}") from None
        keys += [line.strip() for line in lines if not line.strip().startswith("#")]
        if not any(keys):
            raise SystemExit(f"API_KEYS_FILE={path!r} holds no key")
    return tuple(k for k in keys if k)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. a container's cpuset)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_workers(device: str) -> int:
    """One single-threaded worker per core on the CPU: an LSTM batch uses ~1 core however many threads it gets
    (docs/benchmarks.md: two workers x 1 thread answered about twice the requests of one worker x 2 threads).
    At most 4, since each worker holds its own copy of the models (~0.8 GB resident). One worker drives a GPU."""
    return 1 if on_cuda(device) else min(usable_cores(), 4)


def on_cuda(device: str) -> bool:
    """Whether DEVICE puts the models on a GPU (``auto``: when CUDA is available)."""
    if device.startswith("cuda"):
        return True
    if device == "auto":
        import torch

        return torch.cuda.is_available()
    return False


def workers_warning(device: str, workers: int) -> str | None:
    """The warning for an explicit WORKERS > 1 on a GPU: each worker process creates its own CUDA context
    (several hundred MB) and its own copy of the models on the same GPU, and their kernels take turns there."""
    if workers <= 1 or not on_cuda(device):
        return None
    return (
        f"WORKERS={workers} with DEVICE={device}: each worker puts its own CUDA context and models on the same GPU "
        "and their kernels take turns; one worker (WORKERS=auto) batches all requests on a GPU"
    )


def load_settings() -> Settings:
    device = os.environ.get("DEVICE", "auto").strip() or "auto"
    explicit = os.environ.get("WORKERS", "auto").strip() not in ("", "auto")
    workers = _int("WORKERS", 1) if explicit else default_workers(device)
    if explicit and (warning := workers_warning(device, workers)):
        logging.getLogger("lstm_service").warning(warning)
    return Settings(
        port=_int("PORT", 3000),
        sentiment_artifact=Path(os.environ.get("SENTIMENT_ARTIFACT") or ARTIFACTS_DIR / "sentiment-bilstm.pt"),
        translation_artifact=Path(os.environ.get("TRANSLATION_ARTIFACT") or ARTIFACTS_DIR / "translator-lstm.pt"),
        default_beam_size=_int("DEFAULT_BEAM_SIZE", 4),
        max_beam_size=_int("MAX_BEAM_SIZE", 8),
        device=device,
        gpu_dtype=_choice("GPU_DTYPE", "float16", GPU_DTYPES),
        workers=workers,
        torch_threads=_int("TORCH_THREADS", max(1, usable_cores() // workers)),
        max_texts=_int("MAX_TEXTS", 64),
        max_text_chars=_int("MAX_TEXT_CHARS", 2000),
        max_body_bytes=_int("MAX_BODY_BYTES", 1 << 20),
        batching=_on_off("BATCHING", True),
        max_batch_size=_int("MAX_BATCH_SIZE", 128),
        max_latency_ms=_int("MAX_LATENCY_MS", 2000),
        max_in_flight=_int("MAX_IN_FLIGHT", 256),
        translation_priority=_int("TRANSLATION_PRIORITY", 5, minimum=-19, maximum=19),
        reuseport=_on_off("REUSEPORT", True),
        request_timeout_s=_int("REQUEST_TIMEOUT_S", 25),
        retry_after_s=_int("RETRY_AFTER_S", 1),
        max_translate_work=_int("MAX_TRANSLATE_WORK", 32000),
        max_explain_tokens=_int("MAX_EXPLAIN_TOKENS", 100),
        api_keys=api_keys(),
        metrics_token=os.environ.get("METRICS_TOKEN", "").strip(),
    )


settings = load_settings()
