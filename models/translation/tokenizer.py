"""Subword tokenizer for translation: one SentencePiece model shared by English, German and French.

Joint, because the three languages share most of their alphabet, names and
numbers (``Frisbee``, ``T-Shirt``, ``3``): one vocabulary lets the decoder copy
them and lets the model tie its input and output embeddings. Byte fallback
means no ordinary character ever becomes ``<unk>``; decoding restores spacing
and punctuation exactly as SentencePiece saw them, casing included.

Special ids: 0 ``<pad>``, 1 ``<unk>``, 2 ``<s>``, 3 ``</s>``, then one
target-language token per language (``<2de>``, ``<2fr>``): the decoder starts
from it, which tells one model which language to produce.

The serialized model travels inside the TorchScript artifact, so serving
needs only the ``sentencepiece`` runtime.
"""

from __future__ import annotations

import io
from collections.abc import Iterable

PAD, UNK, BOS, EOS = 0, 1, 2, 3
LANGS = ("de", "fr")


def lang_token(lang: str) -> str:
    return f"<2{lang}>"


class SubwordTokenizer:
    def __init__(self, model_proto: bytes) -> None:
        import sentencepiece as spm

        self.proto = model_proto
        self.sp = spm.SentencePieceProcessor(model_proto=model_proto)
        self.lang_ids = {lang: self.sp.piece_to_id(lang_token(lang)) for lang in LANGS}

    @classmethod
    def train(cls, sentences: Iterable[str], vocab_size: int = 8000, seed_sentences: int = 200000) -> SubwordTokenizer:
        import sentencepiece as spm

        out = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_writer=out,
            vocab_size=vocab_size,
            model_type="unigram",
            character_coverage=1.0,
            byte_fallback=True,
            hard_vocab_limit=False,  # vocab_size is an upper bound (small corpora in tests)
            pad_id=PAD,
            unk_id=UNK,
            bos_id=BOS,
            eos_id=EOS,
            user_defined_symbols=[lang_token(lang) for lang in LANGS],
            input_sentence_size=seed_sentences,
            shuffle_input_sentence=True,
            num_threads=2,
            minloglevel=2,
        )
        return cls(out.getvalue())

    def __len__(self) -> int:
        return int(self.sp.get_piece_size())

    def encode(self, text: str) -> list[int]:
        return list(self.sp.encode(text))

    def decode(self, ids: Iterable[int]) -> str:
        return str(self.sp.decode([i for i in ids if i > EOS and i not in self.lang_ids.values()]))

    def pieces(self, text: str) -> list[str]:
        return list(self.sp.encode(text, out_type=str))
