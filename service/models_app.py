"""Read-only routes next to the inference APIs: ``GET /models`` and the playground's static files at ``/ui/``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

UI_DIR = Path(__file__).parent / "ui"  # static HTML, JavaScript and CSS; no build step


def models_app(list_models: Callable[[], list[dict[str, Any]]]) -> Starlette:
    async def models(_: Request) -> JSONResponse:
        return JSONResponse({"models": list_models()})

    return Starlette(
        routes=[
            Route("/models", models, methods=["GET"]),
            Mount("/ui", app=StaticFiles(directory=UI_DIR, html=True), name="ui"),  # /ui redirects to /ui/ (index.html)
        ]
    )
