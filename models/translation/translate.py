"""Text in, text out around a beam-search program: the one code path for validation, evaluation and serving."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from models.torchscript import device_of
from models.translation.tokenizer import EOS, PAD, SubwordTokenizer

MAX_SOURCE_TOKENS = 200  # subwords; longer inputs are cut (the service's character limit keeps them well below)

SearchFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class Translation:
    text: str
    source_tokens: list[str]
    target_tokens: list[str]
    score: float  # length-normalised log-probability
    attention: list[list[float]] | None = None  # target x source, when asked for


def pad(seqs: list[list[int]], device: str) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = [max(1, len(s)) for s in seqs]
    ids = torch.full((len(seqs), max(lengths)), PAD, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return ids.to(device), torch.tensor(lengths, dtype=torch.long, device=device)


@torch.inference_mode()
def translate(
    search: SearchFn,
    tok: SubwordTokenizer,
    texts: list[str],
    langs: list[str],
    beam_size: int,
    device: str | None = None,
    alignment: bool | Sequence[bool] = False,
) -> list[Translation]:
    """Translate ``texts[i]`` into ``langs[i]`` in one call of ``search`` (one beam size for all).

    The inputs go to ``device``; by default, where ``search``'s weights are (``models.torchscript.device_of``),
    so a program loaded on CUDA gets CUDA tensors. The results are read back to the CPU.

    ``alignment`` (one flag, or one per text) keeps the attention weights of those
    translations: target tokens x source tokens, each row a distribution over the source.
    """
    device = device or device_of(search)
    src = [source_ids(tok, t) for t in texts]
    ids, lengths = pad(src, device)
    lang_ids = torch.tensor([tok.lang_ids[lang] for lang in langs], dtype=torch.long, device=device)
    out, out_len, scores, attn = search(ids, lengths, lang_ids, beam_size)
    out, out_len, scores = out.cpu(), out_len.cpu(), scores.cpu()
    keep = [alignment] * len(texts) if isinstance(alignment, bool) else list(alignment)
    if any(keep):
        attn = attn.float().cpu()
    return [
        translation(tok, s, out[i, : int(out_len[i])].tolist(), float(scores[i]), attn[i, : int(out_len[i]), : len(s)].tolist() if keep[i] else None)
        for i, s in enumerate(src)
    ]


def source_ids(tok: SubwordTokenizer, text: str) -> list[int]:
    """What the encoder reads: the text's subwords (at most MAX_SOURCE_TOKENS), then </s>."""
    return [*tok.encode(text)[:MAX_SOURCE_TOKENS], EOS]


def translation(tok: SubwordTokenizer, src: list[int], hyp: list[int], score: float, attention: list[list[float]] | None) -> Translation:
    """A decoded hypothesis (ending in </s>, unless cut at the length bound) as text, with its tokens."""
    words = hyp[:-1] if hyp and hyp[-1] == EOS else hyp
    return Translation(tok.decode(words), [tok.sp.id_to_piece(j) for j in src], [tok.sp.id_to_piece(j) for j in hyp], score, attention)


def translate_all(
    search: SearchFn, tok: SubwordTokenizer, texts: list[str], lang: str, beam_size: int, batch_size: int = 64, device: str | None = None
) -> list[str]:
    """Many sentences into one language, in length-sorted batches (for evaluation); ``device`` as for ``translate``."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = [""] * len(texts)
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        for i, tr in zip(idx, translate(search, tok, [texts[i] for i in idx], [lang] * len(idx), beam_size, device), strict=True):
            out[i] = tr.text
    return out
