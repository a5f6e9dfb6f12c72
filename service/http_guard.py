"""ASGI middleware in front of the inference endpoints: admission, body limit, deadline, error bodies.

- **Method**: only ``POST``; anything else is answered 405 with ``Allow: POST``.
- **Content type**: the body must be JSON (``application/json``, or no
  ``Content-Type`` at all); anything else is answered 415.
- **Body limit**: a body over ``MAX_BODY_BYTES`` (by ``Content-Length`` or as
  it streams in) is answered 413 before it is parsed.
- **Admission**: at most ``MAX_IN_FLIGHT`` requests per worker are inside the
  endpoints at once; the next one is answered at once with 429 and
  ``Retry-After``, instead of queueing without bound.
- **Deadline**: a request not answered within ``REQUEST_TIMEOUT_S`` is answered
  504. A request whose client has gone (connection closed) or whose deadline
  passed is marked *abandoned* (:class:`Call`, left in the ASGI scope for the
  API method to hand to its model's batcher): its texts are skipped while they
  wait (``service.jobs``) and leave the translator's running decode
  (``service.translation_batcher``), so no model time is spent on an answer
  nobody reads. A sentiment batch already running is not interrupted.
- **Error bodies**: every 4xx/503 from an endpoint leaves as one JSON object
  ``{"error": "<field>: <what is wrong>", "detail": [...]}`` (BentoML answers
  validation errors with a generic sentence and some errors as a JSON list);
  429/503 carry ``Retry-After``. Each refusal is counted in
  ``lstm_rejected_requests_total{endpoint, reason}``.
- **OpenAPI**: ``GET /docs.json`` documents these answers (:func:`document_errors`).
- **Quiet refusals**: BentoML logs every request it refuses (a validation error,
  a shed) at ERROR with a traceback; :func:`quiet_refusals` drops those records,
  so bad input or a burst cannot flood the log. They are counted instead; every
  other exception (a 500) is still logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from service.metrics import get_metrics

Scope = dict[str, Any]
Message = dict[str, Any]

REASONS = {503: "shed", 429: "overloaded", 413: "body_too_large", 504: "timeout"}
# Lingering close: before a 413, the rest of the body is read and discarded (up to these bounds), so that a client
# that writes its whole body before reading (urllib, requests, most SDKs) reads the 413 instead of a connection reset.
DRAIN_BYTES = 64 << 20
DRAIN_SECONDS = 10.0


class Call:
    """The guard's record of one admitted request; batches skip the texts of an abandoned one."""

    __slots__ = ("abandoned",)

    def __init__(self) -> None:
        self.abandoned = False  # the client has gone, or the deadline passed and it was answered 504


def call_of(scope: Mapping[str, Any]) -> Call:
    """The guard's record of the request whose ASGI ``scope`` this is (a fresh one for a request the guard did not see)."""
    call = scope.get(CALL_KEY)
    return call if isinstance(call, Call) else Call()


CALL_KEY = "lstm.call"  # where the guard leaves the request's Call in the ASGI scope, for the API method to pass to its batcher


def _json_response(status: int, body: dict[str, Any], headers: Sequence[tuple[bytes, bytes]] = ()) -> tuple[Message, Message]:
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
    if not isinstance(body.get("error"), str):
        return {"error": json.dumps(body)}
    return {k: v for k, v in body.items() if k in ("error", "detail") and (k != "detail" or isinstance(v, list))}


class HTTPGuard:
    def __init__(
        self,
        app: Any,
        *,
        paths: tuple[str, ...],
        max_in_flight: int,
        max_body_bytes: int,
        retry_after_s: int,
        timeout_s: float,
        auth: bool = False,
        docs_path: str = "/docs.json",
    ) -> None:
        self.app = app
        self.paths = paths
        self.max_in_flight = max_in_flight
        self.max_body_bytes = max_body_bytes
        self.retry_after = str(retry_after_s).encode()
        self.timeout_s = timeout_s
        self.auth = auth  # API keys are required (service.auth): the OpenAPI document says so
        self.docs_path = docs_path
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope["path"] == self.docs_path and scope["method"] == "GET":
            return await self.app(scope, receive, self._documenting(send))
        if scope["path"] not in self.paths:
            return await self.app(scope, receive, send)
        endpoint = scope["path"]
        metrics = get_metrics()

        async def refuse(status: int, reason: str, message: str, headers: Sequence[tuple[bytes, bytes]] = (), **extra: Any) -> None:
            metrics.rejected.labels(endpoint, reason).inc()
            headers = [*headers, (b"retry-after", self.retry_after)] if status in (429, 503) else list(headers)
            for m in _json_response(status, {"error": message, **extra}, headers):
                await send(m)

        if scope["method"] != "POST":
            return await refuse(405, "invalid_request", f"method {scope['method']} is not allowed; use POST", [(b"allow", b"POST")])
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            message = f"request body is {int(length)} bytes; the limit is {self.max_body_bytes} bytes"
            if headers.get(b"expect", b"").lower() != b"100-continue":  # such a client waits for our answer before it sends
                await drain(receive)
            return await refuse(413, "body_too_large", message, limit=self.max_body_bytes)
        ctype = headers.get(b"content-type", b"application/json").split(b";")[0].strip().lower()
        if ctype != b"application/json" and not ctype.endswith(b"+json"):
            return await refuse(415, "invalid_request", f"Content-Type must be application/json, not {ctype.decode(errors='replace')!r}")
        if self.in_flight >= self.max_in_flight:
            message = f"too many requests in flight (limit {self.max_in_flight} per worker); retry later"
            return await refuse(429, "overloaded", message, limit=self.max_in_flight)

        call = Call()
        received = 0
        too_large = False
        body_done = asyncio.Event()
        sent = {"start": False, "end": False}  # what has reached the client

        async def counted_receive() -> Message:
            nonlocal received, too_large
            message: Message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    too_large = True
                    raise _BodyTooLarge
                if not message.get("more_body"):
                    body_done.set()
            return message

        error: dict[str, Any] = {}

        async def forward(message: Message) -> None:
            sent["start"] = True
            sent["end"] = message["type"] == "http.response.body" and not message.get("more_body")
            await send(message)

        async def guarded_send(message: Message) -> None:
            if too_large or call.abandoned:  # the guard answers (413, 504), or nobody is listening any more
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
                metrics.rejected.labels(endpoint, REASONS.get(status, "invalid_request")).inc()
                headers = [(b"retry-after", self.retry_after)] if status in (429, 503) else []
                for m in _json_response(status, error_message(status, parsed), headers):
                    await forward(m)
                return
            await forward(message)

        async def client_gone() -> None:
            await body_done.wait()  # the endpoint has read the whole body: from now on receive() only reports a disconnect
            while (await receive())["type"] != "http.disconnect":
                pass

        scope[CALL_KEY] = call  # the API method hands it to the model's batcher (service.service)
        task = asyncio.ensure_future(self.app(scope, counted_receive, guarded_send))
        task.add_done_callback(_retrieve)
        watcher = asyncio.ensure_future(client_gone())
        self.in_flight += 1
        try:
            done, _ = await asyncio.wait({task, watcher}, timeout=self.timeout_s, return_when=asyncio.FIRST_COMPLETED)
            if task not in done and sent["start"]:
                done, _ = await asyncio.wait({task})  # the answer is going out: let it finish
        except asyncio.CancelledError:  # cancelled from outside: BentoML's backstop timeout, or shutdown
            call.abandoned = True
            task.cancel()
            raise
        finally:
            self.in_flight -= 1
            watcher.cancel()
        if task in done:
            with contextlib.suppress(_BodyTooLarge):
                task.result()
            if too_large:
                await drain(receive)
                await refuse(413, "body_too_large", f"request body exceeds the limit of {self.max_body_bytes} bytes", limit=self.max_body_bytes)
            return
        # Abandoned. The endpoint's task may wait for a batch: left to finish on its own (cancelling it makes BentoML
        # log an error), its texts are skipped and whatever it sends is dropped. One still reading the body is cancelled.
        call.abandoned = True
        if not body_done.is_set():
            task.cancel()
        if watcher in done:
            metrics.rejected.labels(endpoint, "disconnected").inc()
        elif not sent["start"]:
            await refuse(504, "timeout", f"no answer within the deadline of {self.timeout_s:g} s; retry later", limit=self.timeout_s)

    def _documenting(self, send: Any) -> Any:
        """A ``send`` that adds the guard's answers and limits to the OpenAPI document passing through it."""
        parts: list[Message] = []

        async def documenting_send(message: Message) -> None:
            parts.append(message)
            if message["type"] != "http.response.body" or message.get("more_body"):
                return
            start, body = parts[0], b"".join(m.get("body", b"") for m in parts[1:])
            if start["status"] == 200:
                body = json.dumps(document_errors(json.loads(body), self)).encode()
                start = {**start, "headers": [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]}
                start["headers"].append((b"content-length", str(len(body)).encode()))
            await send(start)
            await send({"type": "http.response.body", "body": body})

        return documenting_send


def document_errors(spec: dict[str, Any], guard: HTTPGuard) -> dict[str, Any]:
    """Add the guard's error answers (400, 413, 415, 429, 503, 504) and the body limit to the endpoints of ``spec``."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = {
        "type": "object",
        "title": "Error",
        "required": ["error"],
        "properties": {
            "error": {"type": "string", "description": "what is wrong, naming the field and the limit"},
            "detail": {"type": "array", "items": {"type": "object"}, "description": "400 only: one entry per validation error (pydantic's format)"},
            "limit": {"type": "number", "description": "413, 429, 504: the limit that was reached"},
        },
    }
    retry_after = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}}
    if guard.auth:
        schemes = spec["components"].setdefault("securitySchemes", {})
        schemes["apiKey"] = {"type": "http", "scheme": "bearer", "description": "one of the service's API keys (API_KEYS, API_KEYS_FILE)"}

    def answer(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        if headers:
            out["headers"] = headers
        return out

    for path in guard.paths:
        op = spec.get("paths", {}).get(path, {}).get("post")
        if op is None:
            continue
        responses = {k: v for k, v in op.get("responses", {}).items() if k in ("200", "500")}
        responses.update(
            {
                "400": answer("invalid request: the `error` names the field and the limit; unknown fields are rejected"),
                "413": answer(f"request body over {guard.max_body_bytes} bytes (MAX_BODY_BYTES)"),
                "415": answer("Content-Type is not application/json"),
                "429": answer(f"more than {guard.max_in_flight} requests in flight in this worker (MAX_IN_FLIGHT); retry after Retry-After", retry_after),
                "503": answer("overloaded: the request waited longer than the batching budget (MAX_LATENCY_MS) and was shed", retry_after),
                "504": answer(f"no answer within {guard.timeout_s:g} s (REQUEST_TIMEOUT_S)"),
            }
        )
        if guard.auth:
            responses["401"] = answer("missing or invalid API key", {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}})
            op["security"] = [{"apiKey": []}]
        op["responses"] = dict(sorted(responses.items()))
        body = op.get("requestBody", {})
        body["description"] = f"JSON, at most {guard.max_body_bytes} bytes"
        body["required"] = True
    return spec


class QuietRefusals(logging.Filter):
    """Drops BentoML's log record of a refused request: a client error (4xx) or a shed (503)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from bentoml.exceptions import BentoMLException, ServiceUnavailable
        from pydantic import ValidationError

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, ValidationError):
            return False
        return not (isinstance(exc, BentoMLException) and (exc.error_code < 500 or isinstance(exc, ServiceUnavailable)))


def quiet_refusals() -> None:
    """Install :class:`QuietRefusals` on the logger BentoML reports API exceptions with."""
    logging.getLogger("bentoml._internal.server.http_app").addFilter(QuietRefusals())


async def drain(receive: Any) -> None:
    """Read and discard what remains of a request body, up to ``DRAIN_BYTES`` or ``DRAIN_SECONDS``."""
    read = 0

    async def rest() -> None:
        nonlocal read
        while read <= DRAIN_BYTES:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body"):
                return
            read += len(message.get("body", b""))

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(rest(), DRAIN_SECONDS)


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Collect the outcome of an endpoint task nobody awaits any more (an abandoned request), so asyncio logs nothing."""
    if not task.cancelled():
        task.exception()


class _BodyTooLarge(Exception):
    pass
