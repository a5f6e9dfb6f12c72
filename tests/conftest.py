"""Shared fixtures: a real ``bentoml serve`` process on a free port, the data folder."""

from __future__ import annotations

import os
import random
import string
import threading
import time
from collections.abc import Callable, Iterator
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


CAPTIONS = [
    "A man in a blue shirt is riding a bike down the street while a woman with a red umbrella watches him.",
    "Two young children are playing with a brown dog in the snow next to a wooden fence.",
    "A group of people are standing in front of a large building waiting for the bus to arrive.",
    "A woman in a black dress is singing on a stage while a man plays the guitar behind her.",
]
SLOW_TRANSLATION = {"texts": CAPTIONS * 2, "target": "de", "beam_size": 8}  # seconds of model time for a few together
Answers = list[httpx.Response | Exception]


def translations_in_flight(url: str, n: int, in_progress: Callable[[], float], timeout: float) -> tuple[list[threading.Thread], Answers]:
    """Sends ``n`` ``SLOW_TRANSLATION`` requests to ``url``'s /translate, each from a thread of its own, and returns once
    ``in_progress()`` counts them all (or after 30 s): the threads, and the list their answers (or errors) go to."""
    answers: Answers = []

    def one() -> None:
        try:
            answers.append(httpx.post(f"{url}/translate", json=SLOW_TRANSLATION, timeout=timeout))
        except Exception as e:  # kept for the caller's assertion
            answers.append(e)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while in_progress() < n and time.monotonic() < deadline:
        time.sleep(0.05)
    return threads, answers


def assert_all_translated(answers: Answers, n: int) -> None:
    """``n`` answers, each a 200 with a translation for every text of ``SLOW_TRANSLATION``."""
    assert [a.status_code if isinstance(a, httpx.Response) else repr(a) for a in answers] == [200] * n
    assert all(len(a.json()) == len(SLOW_TRANSLATION["texts"]) for a in answers if isinstance(a, httpx.Response))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "sst2" / "dev.tsv").is_file():
        pytest.skip(f"data sets not found at {DATA_DIR} (set DATA_DIR)")
    return DATA_DIR
