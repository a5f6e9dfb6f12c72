"""Attention encoder-decoder LSTM (Luong et al. 2015, "general" attention, optional input feeding).

Source x_1..x_S (English subwords), target y_1..y_T, y_0 = the target-language token:

    e_s          = E[x_s]                                      (E: one embedding table for all languages)
    m_s          = [LSTM_fwd(e_s) ; LSTM_bwd(e_s)]              (2H_e)  encoder memory
    h_0, c_0     = tanh(W_h [h_S^fwd ; h_1^bwd]), tanh(W_c ...) (H_d)   bridge
    d_t          = LSTM_dec(E[y_{t-1}], d_{t-1})               (H_d)   without input feeding
    d_t          = LSTM_dec([E[y_{t-1}] ; o_{t-1}], d_{t-1})   (H_d)   with input feeding (o_0 = 0)
    a_ts         = softmax_s(d_t^T W_a m_s)                    attention over real source tokens
    c_t          = sum_s a_ts m_s                              (2H_e)
    o_t          = tanh(W_o [c_t ; d_t])                       (D)
    p(y_t | ...) = softmax(E o_t)                              output layer tied to E (D = embedding size)

Without input feeding the decoder LSTM runs over the whole target in one call
during training; with it (the decoder sees which source words it attended to
last step) training runs the decoder a step at a time, as decoding
(``models/translation/search.py``, through ``step``) always does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from models.translation.tokenizer import PAD


@dataclass
class Seq2SeqConfig:
    vocab_size: int
    embed_dim: int = 256
    enc_hidden: int = 256  # per direction
    dec_hidden: int = 512
    dropout: float = 0.3
    input_feeding: bool = False

    def to_dict(self) -> dict[str, int | float | bool]:
        return asdict(self)


class Seq2Seq(nn.Module):
    def __init__(self, cfg: Seq2SeqConfig) -> None:
        super().__init__()
        E, He, Hd = cfg.embed_dim, cfg.enc_hidden, cfg.dec_hidden
        self.embed = nn.Embedding(cfg.vocab_size, E, padding_idx=PAD)
        self.encoder = nn.LSTM(E, He, batch_first=True, bidirectional=True)
        self.bridge_h = nn.Linear(2 * He, Hd)
        self.bridge_c = nn.Linear(2 * He, Hd)
        self.input_feeding = cfg.input_feeding
        self.feed_dim, self.memory_dim, self.state_dim = E, 2 * He, Hd  # widths of o, memory, and h and c (the search reads them)
        self.decoder = nn.LSTM(E + E * int(cfg.input_feeding), Hd, batch_first=True)
        self.attn = nn.Linear(2 * He, Hd, bias=False)  # W_a, applied to the memory once per sentence
        self.out = nn.Linear(2 * He + Hd, E)  # W_o
        self.out_bias = nn.Parameter(torch.zeros(cfg.vocab_size))
        self.drop = nn.Dropout(cfg.dropout)

    def encode(self, src: torch.Tensor, src_len: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """src (B, S), src_len (B,) -> memory (B, S, 2He), keys (B, S, Hd), mask (B, S), h0 and c0 (1, B, Hd)."""
        e = self.drop(self.embed(src))
        packed = pack_padded_sequence(e, src_len.cpu(), batch_first=True, enforce_sorted=False)
        out, (h, c) = self.encoder(packed)
        memory, _ = pad_packed_sequence(out, batch_first=True, total_length=src.size(1))
        memory = self.drop(memory)
        h0 = torch.tanh(self.bridge_h(torch.cat([h[0], h[1]], dim=-1))).unsqueeze(0)
        c0 = torch.tanh(self.bridge_c(torch.cat([c[0], c[1]], dim=-1))).unsqueeze(0)
        mask = torch.arange(src.size(1), device=src.device)[None, :] < src_len[:, None]
        return memory, self.attn(memory), mask, h0, c0

    def attend(self, d: torch.Tensor, memory: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoder states d (B, T, Hd) -> attentional states o (B, T, E) and attention weights (B, T, S)."""
        scores = torch.bmm(d, keys.transpose(1, 2)).masked_fill(~mask[:, None, :], float("-inf"))  # (B, T, S)
        a = torch.softmax(scores, dim=-1)
        ctx = torch.bmm(a, memory)  # (B, T, 2He)
        o = self.drop(torch.tanh(self.out(torch.cat([ctx, d], dim=-1))))  # (B, T, E)
        return o, a

    def project(self, o: torch.Tensor) -> torch.Tensor:
        """Attentional states (..., E) -> logits (..., V), through the tied embedding."""
        return F.linear(o, self.embed.weight, self.out_bias)

    def step(
        self, y: torch.Tensor, o: torch.Tensor, h: torch.Tensor, c: torch.Tensor, memory: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One decoder step: previous tokens y (B, 1), previous o (B, 1, E), state (1, B, Hd) ->
        logits (B, 1, V), attention (B, 1, S), o (B, 1, E), h, c."""
        x = self.drop(self.embed(y))
        if self.input_feeding:
            x = torch.cat([x, o], dim=-1)
        d, (h, c) = self.decoder(x, (h, c))
        o, a = self.attend(d, memory, keys, mask)
        return self.project(o), a, o, h, c

    def forward(self, src: torch.Tensor, src_len: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: tgt_in (B, T) starts with the language token -> logits (B, T, V)."""
        memory, keys, mask, h, c = self.encode(src, src_len)
        if not self.input_feeding:
            d, _ = self.decoder(self.drop(self.embed(tgt_in)), (h, c))
            return self.project(self.attend(d, memory, keys, mask)[0])
        o = memory.new_zeros(src.size(0), 1, self.embed.embedding_dim)
        logits = []
        for t in range(tgt_in.size(1)):
            step_logits, _, o, h, c = self.step(tgt_in[:, t : t + 1], o, h, c, memory, keys, mask)
            logits.append(step_logits)
        return torch.cat(logits, dim=1)
