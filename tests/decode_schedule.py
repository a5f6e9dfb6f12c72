"""A continuous-batching schedule for tests: sentences join a running decode one by one, others leave, some are dropped."""

from __future__ import annotations

import random
from typing import Any, NamedTuple

import torch

from models.torchscript import device_of
from models.translation.translate import pad


class Decoded(NamedTuple):
    tokens: list[int]
    score: float
    attn: torch.Tensor | None  # (len, source length) when kept


def alone(program: Any, src: list[int], lang: int, beam: int) -> Decoded:
    """The sentence decoded by itself, by the static call (``forward``)."""
    device = device_of(program)
    ids, lengths = pad([src], device)
    with torch.no_grad():
        out, out_len, scores, attn = program(ids, lengths, torch.tensor([lang], device=device), beam)
    n = int(out_len[0])
    return Decoded(out[0, :n].tolist(), float(scores[0]), attn[0, :n, : len(src)].cpu())


def continuously(program: Any, sentences: list[tuple[list[int], int, int, bool]], seed: int = 0, drop: frozenset[int] = frozenset()) -> dict[int, Decoded]:
    """Decode ``(src, lang, beam, keep_attn)`` sentences in one running decode: one joins every call, each call advances
    1-3 steps, complete sentences leave at once, those in ``drop`` are taken out unfinished after their second call."""
    rng = random.Random(seed)
    device = device_of(program)
    state, got, calls = None, {}, dict.fromkeys(range(len(sentences)), 0)
    pending = list(range(len(sentences)))
    with torch.no_grad():
        while pending or (state is not None and state.sid.numel() > 0):
            if pending:
                i = pending.pop(0)
                src, lang, beam, keep = sentences[i]
                ids, lengths = pad([src], device)
                t = lambda x: torch.tensor([x], device=device)  # noqa: E731
                new = program.start(ids, lengths, t(lang), beam, t(i), t(keep))
                state = new if state is None else program.join(state, new)
            state = program.advance(state, rng.randint(1, 3))
            done, state = program.finish(state)
            for j, sid in enumerate(done.sid.tolist()):
                n = int(done.lengths[j])
                attn = done.attn[j, :n, : len(sentences[sid][0])].cpu() if sentences[sid][3] else None
                got[sid] = Decoded(done.tokens[j, :n].tolist(), float(done.scores[j]), attn)
            for sid in state.sid.unique().tolist():
                calls[sid] += 1
                if sid in drop and calls[sid] == 2:
                    state = program.drop(state, torch.tensor([sid], device=device))
    return got


def assert_same(got: Decoded, expected: Decoded, atol: float = 1e-5) -> None:
    """The same tokens; scores and attention equal up to rounding (a matrix product rounds by its batch's size):
    ``atol`` 1e-5 for float32 on the CPU (``tests/devices.py`` has the one for the device)."""
    assert got.tokens == expected.tokens
    assert abs(got.score - expected.score) <= atol
    if got.attn is not None:
        torch.testing.assert_close(got.attn.float(), expected.attn.float(), rtol=0, atol=atol)
