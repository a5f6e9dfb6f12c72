"""Mixed traffic inside one worker: a request never waits for the other model, nor for a longer translation.

Each model has its own thread and queue (``service.sentiment_batcher``,
``service.translation_batcher``), and the translator batches at the decoding
step: a short translation joins the running decode and leaves it as soon as it
is complete. Shown with orderings, not timings: the short requests are answered
while the long one is still being decoded.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import psutil
import pytest

from service import listener

from .conftest import Server, busy, gibberish, metric, start_server

LONG = {"texts": gibberish(8, 1000), "target": "de", "beam_size": 4}  # several seconds of decoding on one thread


def test_sentiment_is_answered_while_a_long_translation_decodes(one_worker: Server) -> None:
    server = one_worker
    with busy(server, "/translate", LONG, "translator-lstm") as long:
        for i in range(20):
            r = httpx.post(f"{server.url}/sentiment", json={"texts": [f"a fine film , number {i}"]}, timeout=60)
            assert r.status_code == 200
        assert long.is_alive(), "the sentiment requests were answered only after the translation"


def test_a_short_translation_overtakes_a_long_one(one_worker: Server) -> None:
    server = one_worker
    short = {"texts": ["A dog runs in the park."], "target": "fr", "beam_size": 1}
    alone = httpx.post(f"{server.url}/translate", json=short, timeout=60).json()
    outputs = metric(server, "lstm_output_tokens_count", model="translator-lstm")
    with busy(server, "/translate", LONG, "translator-lstm") as long:
        r = httpx.post(f"{server.url}/translate", json=short, timeout=60)
        assert long.is_alive(), "the short translation was answered only after the long one"
    assert r.status_code == 200 and r.json() == alone
    # The short one left the decode on its own; the long one's 8 texts each left as they completed.
    assert metric(server, "lstm_output_tokens_count", model="translator-lstm") - outputs == 1 + 8


def thread_niceness(pid: int) -> dict[str, list[int]]:
    """The niceness of each thread of process ``pid``, by the thread's OS name (``/proc/<pid>/task/<tid>``)."""
    found: dict[str, list[int]] = {}
    for tid in sorted(os.listdir(f"/proc/{pid}/task"), key=int):
        name = "main" if int(tid) == pid else Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
        stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        found.setdefault(name, []).append(int(stat.rsplit(")", 1)[1].split()[16]))  # field 19 of proc(5): nice
    return found


@pytest.mark.parametrize("priority", [6, -4])
def test_translation_priority_sets_each_threads_niceness(priority: int) -> None:
    """TRANSLATION_PRIORITY=p > 0: the event loop (the worker's main thread) and the sentiment thread at +p;
    p < 0: the translation thread at +|p|. Relative to the translation thread, so a test run under `nice` passes too."""
    server = start_server(f"priority{priority}", WORKERS="1", TRANSLATION_PRIORITY=str(priority))
    try:
        (worker,) = [p for p in psutil.Process(server.proc.pid).children(recursive=True) if listener.WORKER_MODULE in p.cmdline()]
        nice = thread_niceness(worker.pid)
    finally:
        server.stop()
    (translate,), (sentiment,), (main,) = nice["lstm-translate"], nice["lstm-sentiment"], nice["main"]
    assert (main - translate, sentiment - translate) == (priority, priority)
