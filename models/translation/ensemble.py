"""An ensemble of M translators of one shape, decoded by the beam search as one model.

Each member m keeps its own encoder memory and decoder state; at every step the
search ranks hypotheses by the members' mean log-probability (a log-linear
ensemble, renormalised by the search's ``log_softmax``):

    log p(y_t | y_<t, x) ∝ 1/M sum_m log p_m(y_t | y_<t, x)
    a_t                  = 1/M sum_m a_t^m                      attention reported for alignments

The members' states are concatenated along their feature dimension, so every
tensor of the running decode keeps its rows (one per hypothesis) and the search
moves, joins and drops them without knowing there are several models:

    memory (B, S, M·2He)   keys (B, S, M·Hd)   h, c (1, B, M·Hd)   o (B, 1, M·E)   mask (B, S)

The members share the subword model (the same tokenizer trained on the same data).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from models.translation.model import Seq2Seq


class Ensemble(nn.Module):
    if TYPE_CHECKING:
        members: Sequence[Seq2Seq]  # at run time the nn.ModuleList of them registered below

    def __init__(self, members: list[Seq2Seq]) -> None:
        super().__init__()
        first = members[0]
        shapes = {(m.embed.num_embeddings, m.feed_dim, m.memory_dim, m.state_dim, m.input_feeding) for m in members}
        if len(shapes) != 1:
            raise ValueError(f"ensemble members must share one shape (vocabulary, sizes, input feeding); got {sorted(shapes)}")
        self.add_module("members", nn.ModuleList(members))
        self.n = len(members)
        self.E, self.M2, self.Hd = first.feed_dim, first.memory_dim, first.state_dim  # per member
        self.feed_dim, self.memory_dim, self.state_dim = self.n * self.E, self.n * self.M2, self.n * self.Hd

    def encode(self, src: torch.Tensor, src_len: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """src (B, S), src_len (B,) -> memory (B, S, M·2He), keys (B, S, M·Hd), mask (B, S), h0 and c0 (1, B, M·Hd)."""
        memory, keys, h0, c0 = [], [], [], []
        mask = torch.zeros(0, dtype=torch.bool)
        for member in self.members:
            m, k, mask, h, c = member.encode(src, src_len)
            memory.append(m)
            keys.append(k)
            h0.append(h)
            c0.append(c)
        return torch.cat(memory, -1), torch.cat(keys, -1), mask, torch.cat(h0, -1), torch.cat(c0, -1)

    def step(
        self, y: torch.Tensor, o: torch.Tensor, h: torch.Tensor, c: torch.Tensor, memory: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step of every member: y (B, 1), o (B, 1, M·E), h, c (1, B, M·Hd) ->
        mean log-probabilities (B, 1, V), mean attention (B, 1, S), o, h, c (the members' concatenated)."""
        logp = torch.zeros(0)
        attn = torch.zeros(0)
        os, hs, cs = [], [], []
        for i, member in enumerate(self.members):
            logits, a, o_i, h_i, c_i = member.step(
                y,
                o.narrow(2, i * self.E, self.E),
                h.narrow(2, i * self.Hd, self.Hd),
                c.narrow(2, i * self.Hd, self.Hd),
                memory.narrow(2, i * self.M2, self.M2),
                keys.narrow(2, i * self.Hd, self.Hd),
                mask,
            )
            lp = torch.log_softmax(logits.float(), dim=-1)
            logp = lp if i == 0 else logp + lp
            attn = a if i == 0 else attn + a
            os.append(o_i)
            hs.append(h_i)
            cs.append(c_i)
        return logp / self.n, attn / self.n, torch.cat(os, -1), torch.cat(hs, -1), torch.cat(cs, -1)
