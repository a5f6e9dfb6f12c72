"""System (f) of ``make bench``: an empty BentoML API in this service's layout, no model.

    WORKERS=2 bentoml serve loadtests.baselines.empty_bentoml:EmptyService --port 8003

What BentoML's stack alone reaches on this machine: the same ``WORKERS``, the
same per-worker SO_REUSEPORT sockets (``service.listener``), access logs and
tracing off as the service has them, a pydantic input of the same shape, and a
fixed answer of the same shape (one result per text), without guard, queue or
model. This service's throughput as a share of this one is the part of the
machine the models and our own code get; the rest is BentoML's.
"""

from __future__ import annotations

from typing import Any

import bentoml

from service import listener
from service.config import settings

listener.install()

ANSWER = {"label": "positive", "confidence": 0.9, "probabilities": {"negative": 0.1, "positive": 0.9}}


@bentoml.service(
    name="empty_service",
    workers=settings.workers,
    tracing={"excluded_urls": ["/sentiment", "/translate"]},
    logging={"access": {"enabled": False}},
)
class EmptyService:
    @bentoml.api(route="/sentiment")
    async def sentiment(self, texts: list[str]) -> list[dict[str, Any]]:
        """One fixed sentiment result per text."""
        return [ANSWER for _ in texts]

    @bentoml.api(route="/translate")
    async def translate(self, texts: list[str], source: str = "en", target: str = "de", beam_size: int = 4) -> list[dict[str, Any]]:
        """Each text back as its own translation."""
        return [{"translation": t} for t in texts]
