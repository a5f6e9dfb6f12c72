"""Read-only routes next to the inference APIs: ``GET /models``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def models_app(list_models: Callable[[], list[dict[str, Any]]]) -> Starlette:
    async def models(_: Request) -> JSONResponse:
        return JSONResponse({"models": list_models()})

    return Starlette(routes=[Route("/models", models, methods=["GET"])])
