"""Adaptive batching of texts across requests, through BentoML's own dispatcher.

BentoML batches the single argument of a ``batchable`` API. Ours is the whole
request (``SentimentRequest``, ...), so we tell BentoML how to merge and split
such requests by registering a data container for ``TextsRequest``:

- batch size of a request = its number of texts (so ``max_batch_size`` counts texts),
- a batch of requests becomes one flat list of :class:`Item` (a text plus the
  request it came from, for its options and arrival time),
- a request can be split between two batches when it does not fit whole,
- a request abandoned while it waited (its client has gone, or its deadline
  passed) contributes no texts.

The API function receives the flat item list and returns one result per item;
BentoML cuts the results back into per-request lists.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, NamedTuple

from bentoml._internal.runner.container import DataContainer, DataContainerRegistry

from service.schemas import TextsRequest


class Item(NamedTuple):
    text: str
    request: TextsRequest


class TextsRequestContainer(DataContainer[TextsRequest, Any]):
    @classmethod
    def get_batch_size(cls, batch: TextsRequest, batch_dim: int) -> int:
        return len(batch.texts)

    @classmethod
    def batches_to_batch(cls, batches: Sequence[TextsRequest], batch_dim: int = 0) -> tuple[list[Item], list[int]]:
        # An abandoned request (client gone, deadline passed: see service.http_guard) contributes no texts and gets no results.
        live = [[] if req._call.abandoned else req.texts for req in batches]
        items = [Item(text, req) for req, texts in zip(batches, live, strict=True) for text in texts]
        indices = [0]
        for texts in live:
            indices.append(indices[-1] + len(texts))
        return items, indices

    @classmethod
    def batch_to_batches(cls, batch: TextsRequest, indices: Sequence[int], batch_dim: int = 0) -> list[TextsRequest]:
        parts = []
        for a, b in itertools.pairwise(indices):
            part = batch.model_copy(update={"texts": batch.texts[a:b]})
            part._received = batch._received
            parts.append(part)
        return parts

    # Payload conversion is only for cross-process runners, which this service does not use.
    @classmethod
    def to_payload(cls, batch: Any, batch_dim: int) -> Any:
        raise NotImplementedError

    @classmethod
    def from_payload(cls, payload: Any) -> Any:
        raise NotImplementedError


DataContainerRegistry.register_container(TextsRequest, TextsRequest, TextsRequestContainer)
