"""Request and response bodies, validated by pydantic; the limits come from ``service.config``.

Unknown fields are rejected (400) rather than ignored, so a misspelt option
(``"beamsize"``) is reported instead of silently falling back to a default.
"""

from __future__ import annotations

import time
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StringConstraints, field_validator

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
