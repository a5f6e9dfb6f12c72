"""``explain`` on ``POST /sentiment`` and ``alignment`` on ``POST /translate``, against the real ``bentoml serve`` process."""

from __future__ import annotations

import concurrent.futures as cf
from typing import Any

import httpx
import pytest

from service.config import settings

from .conftest import BUSY_SENTIMENT, Server, busy, metric

REVIEW = "I liked this product at first. But the battery dies after an hour, the screen scratches easily and the support never answered my emails."
TEXTS = [REVIEW, "a gorgeous, witty, seductive movie.", "the plot is nothing but boilerplate clichés"]


def post(server: Server, route: str, body: object) -> httpx.Response:
    return httpx.post(f"{server.url}{route}", json=body, timeout=60)


def answer(server: Server, route: str, body: object) -> Any:
    r = post(server, route, body)
    assert r.status_code == 200, r.text
    return r.json()[0]


def test_explain_shapes_and_invariants(server: Server) -> None:
    plain = post(server, "/sentiment", {"texts": TEXTS})
    r = post(server, "/sentiment", {"texts": TEXTS, "explain": True})
    assert r.status_code == 200
    for p, e in zip(plain.json(), r.json(), strict=True):
        x = e.pop("explanation")
        assert e == p
        n = len(x["tokens"])
        assert len(x["occlusion"]) == len(x["trajectory"]) == len(x["in_vocabulary"]) == n > 0
        assert x["label"] == p["label"] and x["trajectory"][-1] == p["confidence"]
    first = r.json()[0]["explanation"]
    assert first["tokens"][:3] == ["i", "liked", "this"] and first["label"] == "negative"
    assert first["trajectory"][first["tokens"].index("battery")] < 0.1 < 0.9 < first["trajectory"][first["tokens"].index("dies")]


def test_the_same_numbers_as_the_python_api(server: Server) -> None:
    from service.inference import load_sentiment

    http = post(server, "/sentiment", {"texts": TEXTS, "explain": True}).json()
    local = load_sentiment().predict(TEXTS, explain=True)
    for h, loc in zip(http, local, strict=True):
        assert h["label"] == loc["label"] and h["explanation"]["tokens"] == loc["explanation"]["tokens"]
        for key in ("occlusion", "trajectory"):
            assert h["explanation"][key] == pytest.approx(loc["explanation"][key], abs=1e-5)


def test_without_flags_the_responses_are_unchanged(server: Server) -> None:
    body = {"texts": TEXTS}
    plain = post(server, "/sentiment", body)
    assert [set(o) for o in plain.json()] == [{"label", "confidence", "probabilities"}] * len(TEXTS)
    assert post(server, "/sentiment", {**body, "explain": False}).content == plain.content
    tbody = {"texts": ["A man in a blue shirt is riding a bike."], "target": "de"}
    t = post(server, "/translate", tbody)
    assert t.json() == [{"translation": "Ein Mann in einem blauen Hemd fährt Fahrrad."}]
    assert post(server, "/translate", {**tbody, "alignment": False}).content == t.content


def test_alignment_shapes_and_rows(server: Server) -> None:
    texts = ["A man in a blue shirt is riding a bike.", "Two dogs play in the snow."]
    for target in ("de", "fr"):
        plain = post(server, "/translate", {"texts": texts, "target": target}).json()
        r = post(server, "/translate", {"texts": texts, "target": target, "alignment": True})
        assert r.status_code == 200
        for p, o in zip(plain, r.json(), strict=True):
            a = o.pop("alignment")
            assert o == p
            assert a["source_tokens"][:3] == ["▁A", "▁man", "▁in"] or a["source_tokens"][:2] == ["▁Two", "▁dogs"]
            assert a["source_tokens"][-1] == a["target_tokens"][-1] == "</s>"
            assert len(a["weights"]) == len(a["target_tokens"])
            assert {len(row) for row in a["weights"]} == {len(a["source_tokens"])}
            assert all(abs(sum(row) - 1) < 1e-4 for row in a["weights"])
            assert "".join(a["target_tokens"][:-1]).replace("▁", " ").strip() == p["translation"]


def test_flags_mixed_in_concurrent_requests(one_worker: Server) -> None:
    """Requests with and without flags share batches; each gets exactly what it asked for."""
    server = one_worker
    texts, source = TEXTS[1:], "A man in a blue shirt is riding a bike."  # short texts: the point is sharing, not load
    s_plain = {t: answer(server, "/sentiment", {"texts": [t]}) for t in texts}
    t_plain = {b: answer(server, "/translate", {"texts": [source], "target": "de", "beam_size": b}) for b in (1, 4)}
    before = metric(server, "lstm_batch_items_count", model="sentiment-bilstm")

    def sentiment(i: int) -> tuple[str, bool, Any]:
        text, flag = texts[i % 2], i % 3 == 0
        return text, flag, answer(server, "/sentiment", {"texts": [text], "explain": flag})

    def translate(i: int) -> tuple[int, bool, Any]:
        beam, flag = (1, 4)[i % 2], i % 3 == 0
        return beam, flag, answer(server, "/translate", {"texts": [source], "target": "de", "beam_size": beam, "alignment": flag})

    with busy(server, "/sentiment", BUSY_SENTIMENT, "sentiment-bilstm"), cf.ThreadPoolExecutor(24) as pool:  # they queue, then share batches
        s_out = list(pool.map(sentiment, range(24)))
    with cf.ThreadPoolExecutor(8) as pool:
        t_out = list(pool.map(translate, range(12)))
    for text, flag, r in s_out:
        assert ("explanation" in r) == flag
        assert {k: v for k, v in r.items() if k != "explanation"} == s_plain[text]
    for beam, flag, r in t_out:
        assert ("alignment" in r) == flag
        assert {k: v for k, v in r.items() if k != "alignment"} == t_plain[beam]
    assert metric(server, "lstm_batch_items_count", model="sentiment-bilstm") - before - 1 < 24  # some requests did share a batch


N = settings.max_explain_tokens
BAD: list[tuple[str, dict[str, Any], str]] = [
    ("/sentiment", {"texts": ["ok"], "explain": "yes"}, "explain: Input should be a valid boolean"),
    ("/sentiment", {"texts": ["ok"], "explain": 1}, "explain: Input should be a valid boolean"),
    ("/sentiment", {"texts": ["ok"], "explain": None}, "explain: Input should be a valid boolean"),
    ("/sentiment", {"texts": ["ok"], "alignment": True}, "alignment: Extra inputs are not permitted"),
    ("/sentiment", {"texts": ["good " * (N + 1)], "explain": True}, f"explain: the texts hold {N + 1} tokens; the limit is {N} tokens per request"),
    ("/sentiment", {"texts": ["good " * (N // 2 + 1)] * 2, "explain": True}, f"explain: the texts hold {2 * (N // 2 + 1)} tokens"),
    ("/translate", {"texts": ["A dog."], "target": "de", "alignment": "true"}, "alignment: Input should be a valid boolean"),
    ("/translate", {"texts": ["A dog."], "target": "de", "explain": True}, "explain: Extra inputs are not permitted"),
]


@pytest.mark.parametrize(("route", "body", "message"), BAD, ids=[m for _, _, m in BAD])
def test_bad_flags_are_400_with_a_message(server: Server, route: str, body: dict[str, Any], message: str) -> None:
    before = metric(server, "lstm_rejected_requests_total", endpoint=route, reason="invalid_request")
    r = post(server, route, body)
    assert r.status_code == 400
    assert message in r.json()["error"]
    assert metric(server, "lstm_rejected_requests_total", endpoint=route, reason="invalid_request") == before + 1


def test_explain_token_budget_boundary(server: Server) -> None:
    r = post(server, "/sentiment", {"texts": ["good " * N], "explain": True})
    assert r.status_code == 200 and len(r.json()[0]["explanation"]["tokens"]) == N
    assert post(server, "/sentiment", {"texts": ["good " * (N + 1)]}).status_code == 200  # the budget is for explanations only


def test_openapi_documents_the_fields(server: Server) -> None:
    schemas = httpx.get(f"{server.url}/docs.json", timeout=10).json()["components"]["schemas"]
    req = schemas["SentimentRequestIODescriptor"]["properties"]["explain"]
    assert req["type"] == "boolean" and req["default"] is False and f"at most {N} tokens" in req["description"]
    assert schemas["TranslateRequestIODescriptor"]["properties"]["alignment"]["type"] == "boolean"
    expl = schemas["SentimentExplanation"]["properties"]
    assert "without this token" in expl["occlusion"]["description"]
    assert "the last value is `confidence`" in expl["trajectory"]["description"]
    assert "each row sums to 1" in schemas["Alignment"]["properties"]["weights"]["description"]
    assert "explanation" in schemas["SentimentResult"]["properties"] and "alignment" in schemas["TranslateResult"]["properties"]
