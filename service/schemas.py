"""Request and response bodies, validated by pydantic; the limits come from ``service.config``.

Unknown fields are rejected (400) rather than ignored, so a misspelt option
(``"beamsize"``) is reported instead of silently falling back to a default.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StrictBool, StringConstraints, field_validator, model_validator

from models.manifest import read_manifest
from models.sentiment.tokenizer import tokenize
from service.config import settings

# Blank: only characters of Python's whitespace set (`str.isspace`: ASCII's, U+001C-U+001F, U+0085, U+00A0, the Unicode
# spaces and line separators). `_not_blank` checks it with `str.strip()`; the schema's pattern says the same to clients
# (JSON Schema's `\\S` would not: ECMAScript's whitespace differs, e.g. U+0085 and U+001C-U+001F are not in it).
WHITESPACE = "".join(chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace())
NOT_BLANK = "[^" + "".join(f"\\u{ord(c):04x}" for c in WHITESPACE) + "]"  # matches a text with one non-whitespace character

# minLength and pattern only document what `_not_blank` checks (with a message that names the text at fault).
Text = Annotated[str, StringConstraints(max_length=settings.max_text_chars), Field(json_schema_extra={"minLength": 1, "pattern": NOT_BLANK})]


@dataclass(frozen=True)
class Budget:
    """A per-request limit on a request's work: over it the request is refused (400) with a message that names the fields."""

    fields: str  # the request fields the work comes from
    limit: int
    unit: str
    instead: str  # what else the client can do, besides sending fewer or shorter texts

    def check(self, used: int, usage: str) -> None:
        """Refuse ``used`` (counted as ``usage`` says) when it is over the limit."""
        if used > self.limit:
            raise ValueError(f"{self.fields}: {usage}; the limit is {self.limit} {self.unit} per request (send fewer or shorter texts, or {self.instead})")


EXPLAIN_BUDGET = Budget("explain", settings.max_explain_tokens, "tokens", "leave explain off")
TRANSLATE_BUDGET = Budget("texts, beam_size", settings.max_translate_work, "characters x beam", "a smaller beam")


class TextsRequest(BaseModel):
    """A request carrying ``texts``; each model's thread batches the texts of many requests."""

    model_config = ConfigDict(extra="forbid")

    texts: list[Text] = Field(
        min_length=1,
        max_length=settings.max_texts,
        description=f"1 to {settings.max_texts} texts, each 1 to {settings.max_text_chars} characters and not only whitespace.",
    )

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

    explain: StrictBool = Field(
        default=False,
        description="true: add an `explanation` to each result (per-token occlusion and the sentiment trajectory); "
        f"the texts of such a request may hold at most {settings.max_explain_tokens} tokens together",
    )

    @model_validator(mode="after")
    def _explain_budget(self) -> SentimentRequest:
        tokens = sum(len(tokenize(t)) for t in self.texts) if self.explain else 0
        EXPLAIN_BUDGET.check(tokens, f"the texts hold {tokens} tokens")
        return self


class SentimentExplanation(BaseModel):
    """Why the model predicted ``label``: the text scored again without each token, and cut after each token."""

    tokens: list[str] = Field(description="the words the model read (lowercased, SST-2 style: `does n't`), in order")
    in_vocabulary: list[bool] = Field(description="per token: false when the model does not know the word and reads it as `<unk>`")
    label: str = Field(description="the explained label: the predicted one")
    occlusion: list[float] = Field(
        description="per token: confidence minus P(label | the text without this token), in [-1, 1]; "
        "> 0: the token pushed the prediction towards `label`, < 0: away from it. The text is scored with the token removed."
    )
    trajectory: list[float] = Field(
        description="per token t: P(label | the text's tokens 1..t), the prediction had the text ended after token t; "
        "the last value is `confidence`. The forward LSTM's states over the prefix are those of the whole text."
    )


class SentimentResult(BaseModel):
    label: str = Field(description="`negative` or `positive`")
    confidence: float = Field(description="probability of the predicted label")
    probabilities: dict[str, float] = Field(description="probability of every label; they sum to 1")
    explanation: SentimentExplanation | None = Field(
        default=None, exclude_if=lambda v: v is None, description="only with `explain: true`: per-token contributions and the running prediction"
    )


def supported_pairs() -> list[tuple[str, str]]:
    """Language pairs of the configured translation artifact, as its manifest records them."""
    path = settings.translation_artifact
    entry = read_manifest(path.parent / "manifest.json")["artifacts"].get(path.name, {})
    return [(s, t) for s, t in entry.get("pairs", [])]


PAIRS = supported_pairs()
PAIRS_TEXT = ", ".join(f"{s}->{t}" for s, t in PAIRS) or "none"
SOURCES: list[JsonValue] = [*sorted({s for s, _ in PAIRS})]
TARGETS: list[JsonValue] = [*sorted({t for _, t in PAIRS})]


class TranslateRequest(TextsRequest):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"example": {"texts": ["A man in a blue shirt is riding a bike."], "source": "en", "target": "de", "beam_size": 4}},
    )

    # The enums document the languages; `_supported_pair` checks the pair, with a message listing the supported ones.
    source: str = Field(default="en", description=f"source language; supported pairs: {PAIRS_TEXT}", json_schema_extra={"enum": SOURCES})
    target: str = Field(description=f"target language; supported pairs: {PAIRS_TEXT}", json_schema_extra={"enum": TARGETS})
    beam_size: int = Field(
        default=settings.default_beam_size,
        ge=1,
        le=settings.max_beam_size,
        strict=True,  # "2", 2.5 and true are not beam sizes
        description=f"beam width, 1 (greedy) to {settings.max_beam_size}; default {settings.default_beam_size}. "
        f"The characters of all texts times beam_size may be at most {settings.max_translate_work}",
    )
    alignment: StrictBool = Field(default=False, description="true: add an `alignment` (the attention weights) to each result")

    @model_validator(mode="after")
    def _supported_pair(self) -> TranslateRequest:
        if (self.source, self.target) not in PAIRS:
            raise ValueError(f"source, target: unsupported language pair {self.source}->{self.target}; supported: {PAIRS_TEXT}")
        return self

    @model_validator(mode="after")
    def _work_budget(self) -> TranslateRequest:
        chars = sum(len(t) for t in self.texts)
        work = chars * self.beam_size
        TRANSLATE_BUDGET.check(work, f"{chars} characters x beam {self.beam_size} = {work}")
        return self


class Alignment(BaseModel):
    """The decoder's attention while it wrote the translation: which source subwords each target subword looked at."""

    source_tokens: list[str] = Field(description="the source's subword pieces (`▁` marks a word start), ending with `</s>`")
    target_tokens: list[str] = Field(description="the translation's subword pieces, ending with `</s>`")
    weights: list[list[float]] = Field(
        description="attention, one row per target token and one column per source token: weights[j][i] is how much "
        "target token j attended to source token i when it was chosen; each row sums to 1"
    )


class TranslateResult(BaseModel):
    translation: str = Field(description="the translated text, detokenized")
    alignment: Alignment | None = Field(
        default=None, exclude_if=lambda v: v is None, description="only with `alignment: true`: subword tokens and attention weights"
    )
