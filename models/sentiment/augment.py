"""Text augmentation for distillation (Tang et al. 2019, "Distilling Task-Specific Knowledge from BERT").

New, unlabeled sentences made from training sentences; the teacher labels them,
so the student sees the teacher's judgement on many more inputs than SST-2 has.
Rules, applied per word: mask to <unk> with probability p_mask, or swap for a
random word of the same vocabulary with probability p_swap; then, with
probability p_ngram, keep only a random n-gram (n in 1..5).
"""

from __future__ import annotations

import random

from models.sentiment.tokenizer import UNK


def augment(tokens: list[str], words: list[str], rng: random.Random, p_mask: float = 0.1, p_swap: float = 0.1, p_ngram: float = 0.25) -> list[str]:
    out = []
    for t in tokens:
        r = rng.random()
        out.append(UNK if r < p_mask else rng.choice(words) if r < p_mask + p_swap else t)
    if len(out) > 2 and rng.random() < p_ngram:
        n = rng.randint(1, min(5, len(out)))
        s = rng.randint(0, len(out) - n)
        out = out[s : s + n]
    return out


def augmented(sentences: list[list[str]], words: list[str], copies: int, seed: int = 0) -> list[list[str]]:
    """``copies`` augmented versions of every token list, duplicates (and the originals) removed."""
    rng = random.Random(seed)
    seen: set[tuple[str, ...]] = {tuple(s) for s in sentences}
    out = []
    for _ in range(copies):
        for s in sentences:
            a = augment(s, words, rng)
            if a and tuple(a) not in seen:
                seen.add(tuple(a))
                out.append(a)
    return out
