"""Warm-up before ``/readyz``: each worker runs the programs' methods the model threads will call, on the shapes that will come.

The first calls of a TorchScript method run its profiling executor; the next call
compiles an optimised graph for the input shapes it saw. On the CPU that is all
(TorchScript fuses no CPU kernels by default), so a few calls of fixed shapes
do, and they stay cheap: start-up time is what every test, restart and rollout
waits for. On CUDA the fuser also compiles kernels for the shapes it profiled:
two specializations to fixed shapes, then kernels for symbolic shapes (torch.jit's
default fusion strategy), where a size of 1 is still a shape of its own. So on CUDA
the warm-up runs several batch sizes (1 and more), text lengths (one word and
many), beam sizes (greedy, the default, the largest) and attention kept or not,
twice, before the first request pays a compilation.

The translator is warmed through the methods its thread calls (``start``,
``join``, ``advance`` with one and several steps, ``finish``, ``drop``), which
are compiled separately from ``forward`` (the Python API's static call).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from models.translation.translate import pad, source_ids
from service.inference import SentimentClassifier, TranslationModel

REVIEW = "a gorgeous , witty , seductive movie ."
CAPTION = "A man in a blue shirt is riding a bike."
SAMPLE_REVIEWS = [REVIEW, "the plot is nothing but boilerplate clichés", "ok"]


@dataclass(frozen=True)
class Group:
    """Sentences that start a running decode together: ``texts`` texts of ``words`` words (0: the sample caption
    itself), one beam size, the target languages in turn."""

    texts: int
    words: int
    beam: int
    keep_attn: bool = False


@dataclass(frozen=True)
class Plan:
    rounds: int  # the whole plan runs this many times (the profiling run, then the optimised graph)
    sentiment: list[tuple[int, int]]  # (texts, words per text) per call; 0 words: the sample reviews in turn
    decodes: list[list[Group]]  # running decodes: the groups of each join one decode, which then runs to the end
    steps: tuple[int, ...]  # advance() step counts, in turn
    drop: bool  # take the first sentence out unfinished (drop) in each decode


def plan(device: str, default_beam: int, max_beam: int, max_batch: int) -> Plan:
    """What to run before ready: on the CPU the cheap fixed shapes; on CUDA the shapes that will come."""
    if not device.startswith("cuda"):
        return Plan(rounds=2, sentiment=[(3, 0)], decodes=[[Group(2, 0, 1), Group(2, 0, default_beam)]], steps=(16,), drop=True)
    sizes = sorted({min(n, max_batch) for n in (1, 4, 16, 64, max_batch)})
    sentiment = [(n, w) for n in sizes for w in (1, 8, 48)]
    beams = sorted({1, default_beam, max_beam})
    decodes = [
        [Group(n, 3, beams[0]), *(Group(n, words, beam, keep_attn=beam == max_beam) for beam, words in zip(beams[1:], (12, 40), strict=False))]
        for n in sorted({min(n, max_batch) for n in (1, 8, 32)})
    ]
    return Plan(rounds=2, sentiment=sentiment, decodes=decodes, steps=(1, 16, 4), drop=True)


def words(n: int, sample: str) -> str:
    """A text of ``n`` words cut from ``sample`` repeated."""
    pool = sample.split()
    return " ".join(pool[i % len(pool)] for i in range(n))


def warm_up(sentiment: SentimentClassifier, translation: TranslationModel, p: Plan) -> None:
    targets = [t for _, t in translation.pairs]
    for _ in range(p.rounds):
        for n, w in p.sentiment:
            sentiment.run([SAMPLE_REVIEWS[i % len(SAMPLE_REVIEWS)] if w == 0 else words(w, REVIEW) for i in range(n)])
        for groups in p.decodes:
            decode(translation, groups, targets, p.steps, p.drop)


@torch.inference_mode()
def decode(model: TranslationModel, groups: list[Group], targets: list[str], steps: tuple[int, ...], drop: bool) -> None:
    """One running decode as the translator's thread runs it: each group starts and joins it, then it advances
    (``steps`` in turn) and its complete sentences leave until none is left."""
    program, device = model.program, model.device
    state = None
    sid = 0
    for g in groups:
        texts = [CAPTION if g.words == 0 else words(g.words, CAPTION)] * g.texts
        ids, lengths = pad([source_ids(model.tok, t) for t in texts], device)
        langs = torch.tensor([model.tok.lang_ids[targets[i % len(targets)]] for i in range(len(texts))], device=device)
        sids = torch.arange(sid, sid + len(texts), device=device)
        keep = torch.full((len(texts),), g.keep_attn, dtype=torch.bool, device=device)
        new = program.start(ids, lengths, langs, g.beam, sids, keep)
        state = new if state is None else program.join(state, new)
        sid += len(texts)
    if drop and state is not None:
        state = program.drop(state, torch.tensor([0], device=device))
    i = 0
    while state is not None and state.sid.numel() > 0:
        state = program.advance(state, steps[i % len(steps)])
        _, state = program.finish(state)
        i += 1
