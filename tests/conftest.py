"""Shared fixtures: a real ``bentoml serve`` process on a free port, the data folder."""

from __future__ import annotations

import os
import random
import string
import threading
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
    """One worker, for what happens inside one worker's queue (batching); a batching budget long enough that
    requests held behind ``busy_model`` on a loaded machine are never shed."""
    s = start_server("one-worker", WORKERS="1", MAX_LATENCY_MS="30000")
    yield s
    s.stop()


def gibberish(n: int, chars: int, seed: int = 0) -> list[str]:
    """Long texts of random letters: slow to translate (many source subwords for every step to attend over)."""
    rng = random.Random(seed)
    return ["".join(rng.choice(string.ascii_letters + " ") for _ in range(chars)) for _ in range(n)]


@contextmanager
def busy_model(server: ServiceProcess, texts: int = 2) -> Iterator[None]:
    """A long translation runs meanwhile (``texts`` x 1,000 characters at beam 4, ~0.6 s each): with one
    worker and one model thread, requests sent now queue behind it and form batches together once it is done."""
    t = threading.Thread(
        target=httpx.post, args=(f"{server.url}/translate",), kwargs={"json": {"texts": gibberish(texts, 1000), "target": "de"}, "timeout": 60}
    )
    t.start()
    try:
        yield
    finally:
        t.join()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "sst2" / "dev.tsv").is_file():
        pytest.skip(f"data sets not found at {DATA_DIR} (set DATA_DIR)")
    return DATA_DIR
