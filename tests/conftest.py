"""Shared fixtures: a real ``bentoml serve`` process on a free port, the data folder."""

from __future__ import annotations

import os
import random
import string
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from loadtests.server import ROOT, ServiceProcess

DATA_DIR = Path(os.environ.get("DATA_DIR", ROOT.parent / "shared" / "data"))
ARTIFACTS = ROOT / "models" / "artifacts"
OUT = ROOT / "test-artifacts"

Server = ServiceProcess


def start_server(name: str, **env: str) -> ServiceProcess:
    return ServiceProcess(OUT / f"server-{name}.log", TORCH_THREADS="1", **env).wait_ready()


@pytest.fixture(scope="session")
def server() -> Iterator[ServiceProcess]:
    """The service as users run it, with the shipped artifacts."""
    s = start_server("main")
    yield s
    s.stop()


@pytest.fixture(scope="session")
def one_worker() -> Iterator[ServiceProcess]:
    """One worker, for what happens inside one worker's queues (batching); explanations long enough to keep the
    sentiment model busy (``BUSY_SENTIMENT``), and a batching budget long enough that requests held behind it are never shed."""
    s = start_server("one-worker", WORKERS="1", MAX_LATENCY_MS="30000", MAX_EXPLAIN_TOKENS="400")
    yield s
    s.stop()


def metric(server: ServiceProcess, name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` (``_total``, ``_count``, ``_sum`` included) whose labels include ``labels``; 0 when absent."""
    return server.metric(name, **labels)


def gibberish(n: int, chars: int, seed: int = 0) -> list[str]:
    """Long texts of random letters: slow to translate (many source subwords for every step to attend over)."""
    rng = random.Random(seed)
    return ["".join(rng.choice(string.ascii_letters + " ") for _ in range(chars)) for _ in range(n)]


_WORDS = ["the", "film", "is", "a", "great", "and", "terrible", "mess", "of", "ideas", "but", "funny"]
LONG_REVIEW = " ".join(random.Random(0).choices(_WORDS, k=400))
BUSY_SENTIMENT = {"texts": [LONG_REVIEW], "explain": True}  # 400 tokens explained: seconds of sentiment model time in one batch
BUSY_TRANSLATION = {"texts": gibberish(2, 1000), "target": "de", "beam_size": 4}  # about a second of decoding


@contextmanager
def busy(server: ServiceProcess, path: str, body: dict[str, object], model: str) -> Iterator[threading.Thread]:
    """``body`` is sent to ``path`` meanwhile; entered once ``model`` has started on it (its wait was recorded),
    so requests sent inside queue behind it (sentiment) or join its running decode (translation)."""
    before = metric(server, "lstm_batch_wait_seconds_count", model=model)
    t = threading.Thread(target=httpx.post, args=(f"{server.url}{path}",), kwargs={"json": body, "timeout": 120})
    t.start()
    try:
        while metric(server, "lstm_batch_wait_seconds_count", model=model) == before and t.is_alive():
            time.sleep(0.02)
        yield t
    finally:
        t.join()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "sst2" / "dev.tsv").is_file():
        pytest.skip(f"data sets not found at {DATA_DIR} (set DATA_DIR)")
    return DATA_DIR
