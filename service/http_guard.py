"""ASGI middleware in front of the inference endpoints: admission, body limit, error bodies.

- **Admission**: at most ``MAX_IN_FLIGHT`` requests per worker are inside the
  endpoints at once; the next one is answered at once with 429 and
  ``Retry-After``, instead of queueing without bound.
- **Content type**: the body must be JSON (``application/json``, or no
  ``Content-Type`` at all); anything else is answered 415.
- **Body limit**: a body over ``MAX_BODY_BYTES`` (by ``Content-Length`` or as
  it streams in) is answered 413 before it is parsed.
- **Error bodies**: every 4xx/503 from an endpoint leaves as one JSON object
  ``{"error": "<field>: <what is wrong>", "detail": [...]}`` (BentoML answers
  validation errors with a generic sentence and some errors as a JSON list);
  429/503 carry ``Retry-After``. Each refusal is counted in
  ``lstm_rejected_requests_total{endpoint, reason}``.
"""

from __future__ import annotations

import json
from typing import Any

from service.metrics import get_metrics

Scope = dict[str, Any]
Message = dict[str, Any]


def _json_response(status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] = ()) -> tuple[Message, Message]:  # type: ignore[assignment]
    raw = json.dumps(body).encode()
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode()), *headers],
    }
    return start, {"type": "http.response.body", "body": raw}


def error_message(status: int, body: Any) -> dict[str, Any]:
    """Normalise an error body into ``{"error": str, "detail": [...]}`` naming the field at fault."""
    if isinstance(body, list) and len(body) == 1 and isinstance(body[0], dict):
        body = body[0]  # BentoML wraps some 4xx bodies in a list
    if not isinstance(body, dict):
        return {"error": str(body)}
    detail = body.get("detail")
    if status == 400 and isinstance(detail, list) and detail:
        parts = []
        for d in detail:
            loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in d.get("loc", ())).lstrip(".")
            msg = str(d.get("msg", "invalid")).removeprefix("Value error, ")
            parts.append(f"{loc}: {msg}" if loc and not msg.startswith(loc.split(".")[0]) else msg)
        return {"error": "; ".join(parts), "detail": detail}
    if status == 503:
        return {"error": "the service is overloaded and shed this request; retry after the Retry-After delay"}
    return body


class HTTPGuard:
    def __init__(self, app: Any, *, paths: tuple[str, ...], max_in_flight: int, max_body_bytes: int, retry_after_s: int) -> None:
        self.app = app
        self.paths = paths
        self.max_in_flight = max_in_flight
        self.max_body_bytes = max_body_bytes
        self.retry_after = str(retry_after_s).encode()
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            return await self.app(scope, receive, send)
        endpoint = scope["path"]
        metrics = get_metrics()

        async def refuse(status: int, reason: str, message: str, **extra: Any) -> None:
            metrics.rejected.labels(endpoint, reason).inc()
            headers = [(b"retry-after", self.retry_after)] if status in (429, 503) else []
            for m in _json_response(status, {"error": message, **extra}, headers):
                await send(m)

        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            message = f"request body is {int(length)} bytes; the limit is {self.max_body_bytes} bytes"
            return await refuse(413, "body_too_large", message, limit=self.max_body_bytes)
        ctype = headers.get(b"content-type", b"application/json").split(b";")[0].strip().lower()
        if ctype != b"application/json" and not ctype.endswith(b"+json"):
            return await refuse(415, "invalid_request", f"Content-Type must be application/json, not {ctype.decode(errors='replace')!r}")
        if self.in_flight >= self.max_in_flight:
            message = f"too many requests in flight (limit {self.max_in_flight} per worker); retry later"
            return await refuse(429, "overloaded", message, limit=self.max_in_flight)

        received = 0
        too_large = False

        async def counted_receive() -> Message:
            nonlocal received, too_large
            message: Message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    too_large = True
                    raise _BodyTooLarge
            return message

        error: dict[str, Any] = {}

        async def guarded_send(message: Message) -> None:
            if too_large:  # the 413 below replaces whatever the endpoint made of the cut-off body
                return
            if message["type"] == "http.response.start" and (400 <= message["status"] < 500 or message["status"] == 503):
                error["start"], error["body"] = message, b""
                return
            if "start" in error and message["type"] == "http.response.body":
                error["body"] += message.get("body", b"")
                if message.get("more_body"):
                    return
                status = error["start"]["status"]
                try:
                    parsed = json.loads(error["body"] or b"null")
                except ValueError:
                    parsed = error["body"].decode(errors="replace")
                reason = {503: "shed", 429: "overloaded", 413: "body_too_large", 408: "timeout"}.get(status, "invalid_request")
                metrics.rejected.labels(endpoint, reason).inc()
                headers = [(b"retry-after", self.retry_after)] if status in (429, 503) else []
                for m in _json_response(status, error_message(status, parsed), headers):
                    await send(m)
                return
            await send(message)

        self.in_flight += 1
        try:
            await self.app(scope, counted_receive, guarded_send)
        except _BodyTooLarge:
            pass
        finally:
            self.in_flight -= 1
        if too_large:
            await refuse(413, "body_too_large", f"request body exceeds the limit of {self.max_body_bytes} bytes", limit=self.max_body_bytes)


class _BodyTooLarge(Exception):
    pass
