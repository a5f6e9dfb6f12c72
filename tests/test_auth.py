"""Optional API keys (service.auth) and what every HTTP client sees for a body over the limit (the guard's lingering close)."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import httpx
import pytest
import requests

from service.auth import bearer_token, matches
from service.config import settings

from .conftest import OUT, Server, metric, start_server

KEYS = ("key-one", "key-two-from-file")
METRICS_TOKEN = "scrape-me"


@pytest.fixture(scope="module")
def secured() -> Iterator[Server]:
    keys_file = OUT / "api-keys.txt"
    keys_file.parent.mkdir(parents=True, exist_ok=True)
    keys_file.write_text(f"# one key per line\n\n{KEYS[1]}\n")
    s = start_server("secured", WORKERS="1", API_KEYS=KEYS[0], API_KEYS_FILE=str(keys_file), METRICS_TOKEN=METRICS_TOKEN)
    yield s
    s.stop()


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_bearer_token_parsing_and_comparison() -> None:
    assert bearer_token([(b"Authorization", b"Bearer abc")]) == b"abc"
    assert bearer_token([(b"authorization", b"bearer  abc ")]) == b"abc"
    assert bearer_token([(b"authorization", b"Basic abc")]) is None
    assert bearer_token([(b"authorization", b"Bearer ")]) is None
    assert bearer_token([]) is None
    assert matches(b"b", [b"a", b"b"]) and not matches(b"c", [b"a", b"b"]) and not matches(None, [b""])


def test_model_routes_need_a_key_and_health_stays_open(secured: Server) -> None:
    url = secured.url
    refused = metric(secured, "lstm_rejected_requests_total", endpoint="/sentiment", reason="unauthorized")
    for headers in ({}, bearer("wrong"), {"authorization": f"Basic {KEYS[0]}"}):
        r = httpx.post(f"{url}/sentiment", json={"texts": ["ok"]}, headers=headers)
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.json() == {"error": "missing or invalid credentials: send an API key as 'Authorization: Bearer <key>'"}
        assert KEYS[0] not in r.text
    assert httpx.get(f"{url}/models").status_code == 401
    assert httpx.post(f"{url}/translate", json={"texts": ["A dog."], "target": "de"}).status_code == 401
    for key in KEYS:  # from API_KEYS and from API_KEYS_FILE
        assert httpx.post(f"{url}/sentiment", json={"texts": ["ok"]}, headers=bearer(key)).status_code == 200
    assert httpx.post(f"{url}/translate", json={"texts": ["A dog."], "target": "de"}, headers=bearer(KEYS[0])).status_code == 200
    assert httpx.get(f"{url}/models", headers=bearer(KEYS[1])).status_code == 200
    for path in ("/livez", "/readyz", "/docs.json", "/ui/"):
        assert httpx.get(f"{url}{path}").status_code == 200, path
    assert httpx.get(f"{url}/metrics").status_code == 401
    assert httpx.get(f"{url}/metrics", headers=bearer(KEYS[0])).status_code == 401  # its own token
    assert metric(secured, "lstm_rejected_requests_total", endpoint="/sentiment", reason="unauthorized") == refused + 3
    log = secured.log.read_text(errors="replace")
    assert not any(k in log for k in (*KEYS, METRICS_TOKEN)), "a key reached the log"


def test_openapi_declares_the_scheme(secured: Server) -> None:
    spec = httpx.get(f"{secured.url}/docs.json").json()
    assert spec["components"]["securitySchemes"]["apiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "one of the service's API keys (API_KEYS, API_KEYS_FILE)",
    }
    for path in ("/sentiment", "/translate"):
        op = spec["paths"][path]["post"]
        assert op["security"] == [{"apiKey": []}] and "401" in op["responses"]


def test_open_by_default(server: Server) -> None:
    assert httpx.get(f"{server.url}/models").status_code == 200
    assert httpx.get(f"{server.url}/metrics").status_code == 200
    assert "securitySchemes" not in httpx.get(f"{server.url}/docs.json").json().get("components", {})


# ---------------------------------------------------------------- 413 as every client sees it

BIG = json.dumps({"texts": ["x" * 1000] * 20000}).encode()  # ~20 MB, twenty times MAX_BODY_BYTES
MESSAGE = f"the limit is {settings.max_body_bytes} bytes"


def chunks() -> Iterator[bytes]:
    for i in range(0, len(BIG), 65536):
        yield BIG[i : i + 65536]


def urllib_post(url: str, chunked: bool) -> tuple[int, str]:
    data: bytes | Iterator[bytes] = chunks() if chunked else BIG
    headers = {"content-type": "application/json", **({"transfer-encoding": "chunked"} if chunked else {})}
    req = urllib.request.Request(url, data=data, headers=headers, method="POST")  # type: ignore[arg-type]
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def requests_post(url: str, chunked: bool) -> tuple[int, str]:
    r = requests.post(url, data=chunks() if chunked else BIG, headers={"content-type": "application/json"}, timeout=60)
    return r.status_code, r.text


def httpx_post(url: str, chunked: bool) -> tuple[int, str]:
    r = httpx.post(url, content=chunks() if chunked else BIG, headers={"content-type": "application/json"}, timeout=60)
    return r.status_code, r.text


def aiohttp_post(url: str, chunked: bool) -> tuple[int, str]:
    async def stream() -> AsyncIterator[bytes]:
        for chunk in chunks():
            yield chunk

    async def go() -> tuple[int, str]:
        async with aiohttp.ClientSession() as session, session.post(url, data=stream() if chunked else BIG, headers={"content-type": "application/json"}) as r:
            return r.status, await r.text()

    return asyncio.run(go())


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("client", [urllib_post, requests_post, httpx_post, aiohttp_post], ids=lambda f: f.__name__.removesuffix("_post"))
def test_every_client_reads_the_413_for_a_body_over_the_limit(server: Server, client: object, chunked: bool) -> None:
    status, body = client(f"{server.url}/sentiment", chunked)  # type: ignore[operator]
    assert status == 413, body
    assert MESSAGE in body or "exceeds the limit" in body
    assert json.loads(body)["limit"] == settings.max_body_bytes


def test_keys_file_that_cannot_be_read_stops_the_service(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {"API_KEYS_FILE": str(tmp_path / "missing.txt"), "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-c", "import service.config"], env=env, capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert r.returncode != 0 and f"API_KEYS_FILE={env['API_KEYS_FILE']!r} cannot be read" in r.stderr
