"""Mixed traffic inside one worker: a request never waits for the other model, nor for a longer translation.

Each model has its own thread and queue (``service.sentiment_batcher``,
``service.translation_batcher``), and the translator batches at the decoding
step: a short translation joins the running decode and leaves it as soon as it
is complete. Shown with orderings, not timings: the short requests are answered
while the long one is still being decoded.
"""

from __future__ import annotations

import httpx

from .conftest import Server, busy, gibberish, metric

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
