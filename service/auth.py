"""Optional API keys: ASGI middleware in front of everything else.

Off unless keys are configured (``API_KEYS``, comma-separated, or ``API_KEYS_FILE``,
one key per line, for Kubernetes Secrets and compose ``secrets:``). Then:

| paths | needs |
| --- | --- |
| ``/sentiment``, ``/translate``, ``/models`` | ``Authorization: Bearer <one of the API keys>`` |
| ``/metrics`` | ``Authorization: Bearer <METRICS_TOKEN>`` when ``METRICS_TOKEN`` is set, else open |
| ``/livez``, ``/readyz``, ``/docs.json``, ``/ui/`` (its calls send the key the user enters) | open |

A refusal is 401 with ``WWW-Authenticate: Bearer`` and the usual JSON error body,
counted in ``lstm_rejected_requests_total{reason="unauthorized"}``. Keys are
compared in constant time (``hmac.compare_digest`` against every key) and never
logged or echoed.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Sequence
from typing import Any

from service.metrics import get_metrics

PROTECTED = ("/sentiment", "/translate", "/models")
METRICS_PATH = "/metrics"


def bearer_token(headers: Sequence[tuple[bytes, bytes]]) -> bytes | None:
    """The token of an ``Authorization: Bearer <token>`` header, if there is one."""
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, token = value.strip().partition(b" ")
            return token.strip() if scheme.lower() == b"bearer" and token.strip() else None
    return None


def matches(token: bytes | None, keys: Sequence[bytes]) -> bool:
    """Whether ``token`` is one of ``keys``; every key is compared, in constant time."""
    found = False
    for key in keys:
        found |= hmac.compare_digest(token or b"", key)
    return found and token is not None


class APIKeyAuth:
    def __init__(self, app: Any, *, api_keys: Sequence[str], metrics_token: str = "") -> None:
        self.app = app
        self.keys = [k.encode() for k in api_keys]
        self.metrics_token = [metrics_token.encode()] if metrics_token else []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            keys = self.keys if path in PROTECTED else self.metrics_token if path == METRICS_PATH else []
            if keys and not matches(bearer_token(scope["headers"]), keys):
                return await self._refuse(path, send)
        await self.app(scope, receive, send)

    async def _refuse(self, path: str, send: Any) -> None:
        get_metrics().rejected.labels(path, "unauthorized").inc()
        what = "the metrics token" if path == METRICS_PATH else "an API key"
        body = json.dumps({"error": f"missing or invalid credentials: send {what} as 'Authorization: Bearer <key>'"}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", b'Bearer realm="lstm_service"'),
        ]
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": body})
