"""Per-token explanations of the sentiment program, computed with its exported ``probabilities`` method only.

For a text of n tokens w_1..w_n whose prediction is label y with probability
p = P(y | w_1..w_n), the program scores, in one batched call, 2n - 1 variants:

    occlusion[i]  = p - P(y | w_1..w_n without w_i)     i = 1..n   leave-one-out: the token is removed, not masked
    trajectory[t] = P(y | w_1..w_t)                       t = 1..n   the prediction if the text ended after w_t

so ``trajectory[n] == p`` (that entry is the prediction itself, not a rescoring),
an occlusion > 0 means the token pushed the model towards y, < 0 away from it.
Over a prefix the forward LSTM states are exactly those of the whole text (the
forward direction only looks back); the backward direction and the pooling see
only the prefix, as they would if the text stopped there.

Cost: the variants hold about 1.5 n^2 tokens, so explanations are limited to
``MAX_EXPLAIN_TOKENS`` per request (``service.config``). Rows are scored
shortest-first in chunks of at most ``CHUNK_TOKENS`` padded tokens, so a batch
of many explained texts never builds one huge tensor (one call in the common
case of one text).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from models.sentiment.model import pad_batch

CHUNK_TOKENS = 32768  # rows x longest row per program call

Scorer = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (ids, lengths) -> probabilities (B, C)


@dataclass(frozen=True)
class Explanation:
    tokens: list[str]
    in_vocabulary: list[bool]
    label: str
    occlusion: list[float]
    trajectory: list[float]

    def to_dict(self, digits: int = 6) -> dict[str, object]:
        return {
            "tokens": self.tokens,
            "in_vocabulary": self.in_vocabulary,
            "label": self.label,
            "occlusion": [round(v, digits) for v in self.occlusion],
            "trajectory": [round(v, digits) for v in self.trajectory],
        }


def variants(ids: list[int]) -> list[list[int]]:
    """The n texts with one token removed, then the n - 1 proper prefixes (the full text is the last prefix)."""
    return [ids[:i] + ids[i + 1 :] for i in range(len(ids))] + [ids[:t] for t in range(1, len(ids))]


@torch.inference_mode()
def score_rows(score: Scorer, rows: list[list[int]], device: str, chunk_tokens: int = CHUNK_TOKENS) -> torch.Tensor:
    """Probabilities (len(rows), C) of many id lists, shortest first in chunks of at most ``chunk_tokens`` padded tokens."""
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    out: list[torch.Tensor] = []
    start = 0
    while start < len(order):
        end = start + 1
        while end < len(order) and (end + 1 - start) * max(1, len(rows[order[end]])) <= chunk_tokens:
            end += 1
        ids, lengths = pad_batch([rows[i] for i in order[start:end]])
        out.append(score(ids.to(device), lengths.to(device)).float().cpu())
        start = end
    probs = torch.cat(out)
    result = torch.empty_like(probs)
    result[torch.tensor(order)] = probs
    return result


@torch.inference_mode()
def explain(
    score: Scorer, seqs: list[list[int]], tokens: list[list[str]], probs: list[list[float]], labels: list[str], device: str = "cpu"
) -> list[Explanation]:
    """Explanations of texts already scored: ``seqs`` their ids, ``tokens`` their words, ``probs`` their probabilities."""
    rows: list[list[int]] = []
    spans: list[tuple[int, int]] = []
    for ids in seqs:
        v = variants(ids)
        spans.append((len(rows), len(rows) + len(v)))
        rows += v
    scored = score_rows(score, rows, device).tolist() if rows else []
    result = []
    for ids, words, p, (a, b) in zip(seqs, tokens, probs, spans, strict=True):
        y = max(range(len(p)), key=p.__getitem__)
        n = len(ids)
        var = [row[y] for row in scored[a:b]]
        result.append(
            Explanation(
                tokens=words,
                in_vocabulary=[i != 1 for i in ids],  # id 1 is <unk>: the model reads the word as unknown
                label=labels[y],
                occlusion=[p[y] - q for q in var[:n]],
                trajectory=[*var[n:], p[y]] if n else [],
            )
        )
    return result
