"""Request and response bodies, validated by pydantic; the limits come from ``service.config``.

Unknown fields are rejected (400) rather than ignored, so a misspelt option
(``"beamsize"``) is reported instead of silently falling back to a default.
"""

from __future__ import annotations

import time
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StringConstraints, field_validator, model_validator

from models.manifest import read_manifest
from service.config import settings

Text = Annotated[str, StringConstraints(max_length=settings.max_text_chars)]


class TextsRequest(BaseModel):
    """A request carrying ``texts``; adaptive batching merges the texts of many requests."""

    model_config = ConfigDict(extra="forbid")

    texts: list[Text] = Field(
        min_length=1,
        max_length=settings.max_texts,
        description=f"1 to {settings.max_texts} texts, each 1 to {settings.max_text_chars} characters and not only whitespace.",
    )
    # When the request was parsed: the start of its wait for a batch (not part of the schema).
    _received: float = PrivateAttr(default_factory=time.perf_counter)

    @field_validator("texts")
    @classmethod
    def _not_blank(cls, texts: list[str]) -> list[str]:
        for i, text in enumerate(texts):
            if not text.strip():
                raise ValueError(f"texts[{i}] is empty or only whitespace; every text needs at least one visible character")
        return texts


class SentimentRequest(TextsRequest):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"example": {"texts": ["a gorgeous, witty, seductive movie .", "the plot is nothing but boilerplate clichés"]}},
    )


class SentimentResult(BaseModel):
    label: str = Field(description="`negative` or `positive`")
    confidence: float = Field(description="probability of the predicted label")
    probabilities: dict[str, float] = Field(description="probability of every label; they sum to 1")


def supported_pairs() -> list[tuple[str, str]]:
    """Language pairs of the configured translation artifact, as its manifest records them."""
    path = settings.translation_artifact
    entry = read_manifest(path.parent / "manifest.json")["artifacts"].get(path.name, {})
    return [(s, t) for s, t in entry.get("pairs", [])]


PAIRS = supported_pairs()
PAIRS_TEXT = ", ".join(f"{s}->{t}" for s, t in PAIRS) or "none"


class TranslateRequest(TextsRequest):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"example": {"texts": ["A man in a blue shirt is riding a bike."], "source": "en", "target": "de", "beam_size": 4}},
    )

    source: str = Field(default="en", description=f"source language; supported pairs: {PAIRS_TEXT}")
    target: str = Field(description=f"target language; supported pairs: {PAIRS_TEXT}")
    beam_size: int = Field(
        default=settings.default_beam_size,
        ge=1,
        le=settings.max_beam_size,
        description=f"beam width, 1 (greedy) to {settings.max_beam_size}; default {settings.default_beam_size}",
    )

    @model_validator(mode="after")
    def _supported_pair(self) -> TranslateRequest:
        if (self.source, self.target) not in PAIRS:
            raise ValueError(f"source, target: unsupported language pair {self.source}->{self.target}; supported: {PAIRS_TEXT}")
        return self


class TranslateResult(BaseModel):
    translation: str = Field(description="the translated text, detokenized")
