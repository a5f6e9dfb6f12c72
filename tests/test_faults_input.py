"""Bad and odd input against the real server: the validation matrix of both endpoints, odd Unicode, the documented limits.

tests/test_service.py and tests/test_service_translate.py hold the field-level
cases of each endpoint; this file adds what they do not: the transport-level
refusals (method, content type, body size, JSON) on ``/translate`` too, the
translation work budget, strict ``beam_size``, odd but valid Unicode on both
endpoints, CORS being off, and the limits as the OpenAPI document states them.
"""

from __future__ import annotations

import json

import httpx
import pytest

from service.config import settings
from service.schemas import NOT_BLANK

from .conftest import Server, metric

JSON = {"content-type": "application/json"}
ENDPOINTS = {"/sentiment": {}, "/translate": {"target": "de", "beam_size": 1}}  # path -> the other fields of a valid body


def post(server: Server, path: str, body: object = None, *, content: bytes | None = None, headers: dict[str, str] = JSON) -> httpx.Response:
    if content is None:
        content = json.dumps(body).encode()
    return httpx.post(f"{server.url}{path}", content=content, headers=headers, timeout=60)


def body_with(path: str, **fields: object) -> dict[str, object]:
    return {**ENDPOINTS[path], **fields}


# (case, body or raw bytes, status, text the `error` must contain); each runs on both endpoints
MATRIX: list[tuple[str, object, int, str]] = [
    ("texts missing", {}, 400, "texts: Field required"),
    ("texts empty", {"texts": []}, 400, "texts: List should have at least 1 item"),
    ("texts null", {"texts": None}, 400, "texts: Input should be a valid array"),
    ("too many texts", {"texts": ["ok"] * (settings.max_texts + 1)}, 400, f"texts: List should have at most {settings.max_texts} items"),
    ("empty text", {"texts": ["fine", ""]}, 400, "texts[1] is empty or only whitespace"),
    ("whitespace text", {"texts": ["\u3000\u00a0\t\n "]}, 400, "texts[0] is empty or only whitespace"),
    ("text too long", {"texts": ["a" * (settings.max_text_chars + 1)]}, 400, f"texts[0]: String should have at most {settings.max_text_chars} characters"),
    ("non-string text", {"texts": ["fine", {"text": "x"}]}, 400, "texts[1]: Input should be a valid string"),
    ("number text", {"texts": [42]}, 400, "texts[0]: Input should be a valid string"),
    ("texts a string", {"texts": "not a list"}, 400, "texts: Input should be a valid array"),
    ("unknown field", {"texts": ["ok"], "lang": "en"}, 400, "lang: Extra inputs are not permitted"),
    ("body a list", b'["a list"]', 400, "Input should be an object"),
    ("body a string", b'"hello"', 400, "Input should be an object"),
    ("invalid JSON", b'{"texts": ["unterminated', 400, "Invalid JSON"),
    ("invalid UTF-8", b'{"texts": ["\xff\xfe"]}', 400, "Invalid JSON"),
    ("lone surrogate", b'{"texts": ["\\ud800"]}', 400, "Invalid JSON"),
    ("deep nesting", b'{"texts": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400, "Invalid JSON"),
]


@pytest.mark.parametrize("path", list(ENDPOINTS))
@pytest.mark.parametrize(("case", "body", "status", "message"), MATRIX, ids=[c[0] for c in MATRIX])
def test_validation_matrix(server: Server, path: str, case: str, body: object, status: int, message: str) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body_with(path, **body) if isinstance(body, dict) else body).encode()
    r = post(server, path, content=content)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    error = r.json()["error"]
    assert message in error


@pytest.mark.parametrize("path", list(ENDPOINTS))
def test_transport_refusals_name_the_limit(server: Server, path: str) -> None:
    rejected = metric(server, "lstm_rejected_requests_total", endpoint=path, reason="body_too_large")
    r = post(server, path, content=b"texts=hello", headers={"content-type": "text/plain"})
    assert r.status_code == 415 and r.json()["error"] == "Content-Type must be application/json, not 'text/plain'"
    r = httpx.request("GET", f"{server.url}{path}", timeout=10)
    assert r.status_code == 405 and r.headers["allow"] == "POST" and "use POST" in r.json()["error"]
    big = json.dumps(body_with(path, texts=["a" * 1000] * (settings.max_body_bytes // 1000 + 1))).encode()
    r = post(server, path, content=big)  # Content-Length over the limit: refused before the body is read
    assert r.status_code == 413
    assert r.json() == {"error": f"request body is {len(big)} bytes; the limit is {settings.max_body_bytes} bytes", "limit": settings.max_body_bytes}

    def chunks():  # no Content-Length (chunked): refused once the streamed bytes pass the limit
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    r = httpx.post(f"{server.url}{path}", content=chunks(), headers=JSON, timeout=60)
    assert r.status_code == 413 and r.json()["limit"] == settings.max_body_bytes
    assert metric(server, "lstm_rejected_requests_total", endpoint=path, reason="body_too_large") == rejected + 2


def test_translation_work_budget(server: Server) -> None:
    limit = settings.max_translate_work
    chars = limit // 8 + 1  # at beam 8 one character over the budget
    texts = ["a" * 1000] * (chars // 1000) + ["a" * (chars % 1000)]
    r = post(server, "/translate", {"texts": texts, "target": "de", "beam_size": 8})
    assert r.status_code == 400
    assert r.json()["error"] == (
        f"texts, beam_size: {chars} characters x beam 8 = {chars * 8}; the limit is {limit} characters x beam per request "
        "(send fewer or shorter texts, or a smaller beam)"
    )
    # the same texts at a beam that keeps them within the budget are answered (short ones, so the test stays fast)
    assert post(server, "/translate", {"texts": ["A dog runs."] * 8, "target": "de", "beam_size": 8}).status_code == 200


@pytest.mark.parametrize(("beam", "message"), [("2", "Input should be a valid integer"), (2.5, "Input should be a valid integer"), (True, "valid integer")])
def test_beam_size_is_strictly_an_integer(server: Server, beam: object, message: str) -> None:
    r = post(server, "/translate", {"texts": ["A dog runs."], "target": "de", "beam_size": beam})
    assert r.status_code == 400 and r.json()["error"].startswith("beam_size: ") and message in r.json()["error"]


ODD = {
    "emoji": "😀😀😀 great 🎬",
    "emoji ZWJ sequence and flag": "👩‍👩‍👧‍👦 family 🏳️‍🌈",
    "Arabic (right to left)": "مرحبا بالعالم، هذا فيلم رائع",
    "Hebrew with an override": "\u202eשלום\u202c a film",
    "zero-width only": "\u200b\u200c\u200d",
    "byte order mark only": "\ufeff",
    "NUL": "nul\x00char",
    "NUL only": "\x00",
    "control characters": "\x07bell\x1b[31m red \x7f",
    "combining marks only": "\u0301\u0301\u0301",
    "mixed scripts": "mixed ελληνικά русский 中文 日本語 한국어",
    "private use and noncharacters": "\ue000\U000f0000\uffff",
    "astral only": "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "at the length limit": "é" * settings.max_text_chars,
}


@pytest.mark.parametrize("path", list(ENDPOINTS))
def test_odd_but_valid_unicode_is_answered(server: Server, path: str) -> None:
    texts = list(ODD.values())
    r = post(server, path, body_with(path, texts=texts))
    assert r.status_code == 200, r.text
    out = r.json()
    assert len(out) == len(texts)
    for o in out:
        if path == "/sentiment":
            assert o["label"] in ("negative", "positive") and abs(sum(o["probabilities"].values()) - 1) < 1e-3
        else:
            assert isinstance(o["translation"], str)


def test_refusals_are_counted_not_logged(server: Server) -> None:
    """BentoML would log each refused request with a traceback at ERROR: bad input could flood the log.

    BentoML logs a request's exception before its answer leaves the worker, straight to the log file the worker
    inherits, so a record would be there once the 400 is in. One connection (one worker) carries the refusals and
    then a good request: its answer shows that worker done with the refused ones, so the log is read after them."""
    before = server.log.stat().st_size
    rejected = metric(server, "lstm_rejected_requests_total", endpoint="/sentiment", reason="invalid_request")
    with httpx.Client(base_url=server.url, headers=JSON, timeout=60) as client:
        for body in ({}, {"texts": []}, {"texts": [1]}, {"texts": ["ok"], "nope": 1}):
            assert client.post("/sentiment", content=json.dumps(body).encode()).status_code == 400
        assert client.post("/sentiment", content=b"{").status_code == 400
        assert client.post("/sentiment", json={"texts": ["ok"]}).status_code == 200
    assert metric(server, "lstm_rejected_requests_total", endpoint="/sentiment", reason="invalid_request") == rejected + 5
    logged = server.log.read_bytes()[before:].decode(errors="replace")
    assert "[ERROR]" not in logged and "Traceback" not in logged, logged[-3000:]


def test_cors_is_off(server: Server) -> None:
    origin = {"origin": "https://elsewhere.example"}
    r = httpx.post(f"{server.url}/sentiment", json={"texts": ["ok"]}, headers=origin, timeout=30)
    assert r.status_code == 200 and not any(h.startswith("access-control-") for h in r.headers)
    preflight = {**origin, "access-control-request-method": "POST", "access-control-request-headers": "content-type"}
    r = httpx.options(f"{server.url}/sentiment", headers=preflight, timeout=30)
    assert r.status_code == 405 and not any(h.startswith("access-control-") for h in r.headers)


def test_openapi_documents_the_limits_and_errors(server: Server) -> None:
    spec = httpx.get(f"{server.url}/docs.json", timeout=30).json()
    schemas = spec["components"]["schemas"]
    for path, name in (("/sentiment", "SentimentRequestIODescriptor"), ("/translate", "TranslateRequestIODescriptor")):
        texts = schemas[name]["properties"]["texts"]
        assert (texts["minItems"], texts["maxItems"]) == (1, settings.max_texts)
        assert texts["items"] == {"type": "string", "minLength": 1, "maxLength": settings.max_text_chars, "pattern": NOT_BLANK}
        assert schemas[name]["additionalProperties"] is False  # unknown fields are rejected
        op = spec["paths"][path]["post"]
        assert op["requestBody"]["description"] == f"JSON, at most {settings.max_body_bytes} bytes"
        assert set(op["responses"]) == {"200", "400", "413", "415", "429", "500", "503", "504"}
        for status in ("400", "413", "415", "429", "503", "504"):
            assert op["responses"][status]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
        assert "Retry-After" in op["responses"]["429"]["headers"] and "Retry-After" in op["responses"]["503"]["headers"]
        assert str(settings.max_in_flight) in op["responses"]["429"]["description"]
    beam = schemas["TranslateRequestIODescriptor"]["properties"]["beam_size"]
    assert (beam["minimum"], beam["maximum"]) == (1, settings.max_beam_size)
    assert str(settings.max_translate_work) in beam["description"]
    assert schemas["TranslateRequestIODescriptor"]["properties"]["target"]["enum"] == ["de", "fr"]
    assert schemas["Error"]["required"] == ["error"]


def test_blank_means_the_same_to_the_schema_and_to_the_server(server: Server) -> None:
    """A text of only whitespace (Python's ``str.isspace`` set, U+0085 included) is refused by the server, and the
    published pattern refuses it too; a character outside that set (U+FEFF, which ECMAScript counts as space) is text."""
    import re

    from service.schemas import WHITESPACE

    spec = httpx.get(f"{server.url}/docs.json").json()
    pattern = spec["components"]["schemas"]["SentimentRequestIODescriptor"]["properties"]["texts"]["items"]["pattern"]
    texts = [ch * 3 for ch in WHITESPACE]
    assert all(re.search(pattern, t) is None for t in texts)
    for t in texts:
        r = httpx.post(f"{server.url}/sentiment", json={"texts": ["fine", t]})
        assert r.status_code == 400 and "texts[1] is empty or only whitespace" in r.json()["error"], repr(t)
    assert re.search(pattern, "\ufeff") is not None
    assert httpx.post(f"{server.url}/sentiment", json={"texts": ["\ufeff"]}).status_code == 200
