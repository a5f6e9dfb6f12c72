"""``POST /translate`` against the real server: answers, bad input, grouping of mixed requests, metrics."""

from __future__ import annotations

import concurrent.futures as cf

import httpx
import pytest

from .conftest import BUSY_TRANSLATION, Server, busy, metric

SENTENCES = ["A man in a blue shirt is riding a bike.", "Two dogs play in the snow.", "A woman is reading a book on a bench."]


def post(server: Server, body: object) -> httpx.Response:
    return httpx.post(f"{server.url}/translate", json=body, timeout=60)


def test_contract_example(server: Server) -> None:
    r = post(server, {"texts": SENTENCES[:2], "source": "en", "target": "de", "beam_size": 4})
    assert r.status_code == 200
    out = r.json()
    assert len(out) == 2 and all(isinstance(o["translation"], str) and o["translation"] for o in out)


def test_source_defaults_to_english_and_beam_is_optional(server: Server) -> None:
    assert (
        post(server, {"texts": SENTENCES[:1], "target": "fr"}).json()
        == post(server, {"texts": SENTENCES[:1], "source": "en", "target": "fr", "beam_size": 4}).json()
    )


def test_models_lists_the_pairs(server: Server) -> None:
    models = httpx.get(f"{server.url}/models").json()["models"]
    (m,) = [m for m in models if m["task"] == "translation"]
    assert {(p["source"], p["target"]) for p in m["pairs"]} >= {("en", "de"), ("en", "fr")}
    assert {s["metric"] for s in m["scores"]} == {"bleu", "bleu_lowercase"}


BAD = [
    ({"texts": ["Hi."], "target": "es"}, "unsupported language pair en->es; supported: en->de, en->fr"),
    ({"texts": ["Hi."], "source": "de", "target": "en"}, "unsupported language pair de->en"),
    ({"texts": ["Hi."], "target": "de", "beam_size": 0}, "beam_size: Input should be greater than or equal to 1"),
    ({"texts": ["Hi."], "target": "de", "beam_size": 9}, "beam_size: Input should be less than or equal to 8"),
    ({"texts": ["Hi."], "target": "de", "beam_size": "wide"}, "beam_size: Input should be a valid integer"),
    ({"texts": ["Hi."]}, "target: Field required"),
    ({"texts": [], "target": "de"}, "texts: List should have at least 1 item"),
    ({"texts": ["  "], "target": "de"}, "texts[0] is empty or only whitespace"),
    ({"texts": ["Hi."], "target": "de", "beamsize": 2}, "beamsize: Extra inputs are not permitted"),
]


@pytest.mark.parametrize(("body", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_input_is_4xx_with_a_message(server: Server, body: object, message: str) -> None:
    r = post(server, body)
    assert r.status_code == 400
    assert message in r.json()["error"]


def test_mixed_pairs_and_beams_share_the_running_decode_and_are_not_mixed_up(one_worker: Server) -> None:
    """Requests of both pairs, greedy and beam 4, join a long translation's running decode: they share decoder calls
    with it and with each other, and each gets the answer it gets alone."""
    server = one_worker
    requests = [{"texts": [s], "target": t, "beam_size": b} for s in SENTENCES for t in ("de", "fr") for b in (1, 4)]
    alone = [post(server, r).json() for r in requests]
    texts_before = metric(server, "lstm_input_tokens_count", model="translator-lstm")
    calls_before = metric(server, "lstm_batch_items_count", model="translator-lstm")
    shared_before = calls_before - metric(server, "lstm_batch_items_bucket", model="translator-lstm", le="4.0")
    with busy(server, "/translate", BUSY_TRANSLATION, "translator-lstm"), cf.ThreadPoolExecutor(len(requests)) as pool:
        together = list(pool.map(lambda r: post(server, r).json(), requests))
    assert together == alone  # same answer whether decoded with others or not
    assert metric(server, "lstm_input_tokens_count", model="translator-lstm") - texts_before == len(requests) + 2  # + the long ones
    shared = metric(server, "lstm_batch_items_count", model="translator-lstm") - metric(server, "lstm_batch_items_bucket", model="translator-lstm", le="4.0")
    assert shared - shared_before > 0, "no decoder call held more than 4 texts: the requests did not join one running decode"
    assert metric(server, "lstm_output_tokens_count", model="translator-lstm") > 0
