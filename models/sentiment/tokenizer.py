"""Word tokenizer for sentiment, shared by training and serving.

SST-2 text is lowercased and Penn-Treebank tokenized ("it 's", "does n't",
"-lrb-"). Users send raw text ("I LOVED it!!!", "doesn't", curly quotes). Both
go through :func:`tokenize`, which maps raw text onto the SST-2 conventions and
is idempotent on text that already follows them, so the model sees at serving
time exactly the token stream it was trained on.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable

PAD, UNK = "<pad>", "<unk>"

# PTB escapes in SST (dev uses -lrb-/-rrb-, train uses the characters).
_PTB = {"-lrb-": "(", "-rrb-": ")", "-lsb-": "[", "-rsb-": "]", "``": '"', "''": '"', "\\/": "/", "\\*": "*"}
_PTB_RE = re.compile("|".join(re.escape(k) for k in _PTB))
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "`": "'", "\u00b4": "'"})
# Contractions split the PTB way: "doesn't" -> "does n't", "it's" -> "it 's", "can't" -> "ca n't".
_NT = re.compile(r"(\w)n't\b")
_CLITIC = re.compile(r"(\w)'(s|re|ve|ll|d|m)\b")
_TOKEN = re.compile(
    r"n't|'(?:s|re|ve|ll|d|m)\b"  # clitics split off above
    r"|\d+(?:[.,]\d+)*"  # numbers: 1,000 and 3.5
    r"|\w+(?:[-'/]\w+)*"  # words, hyphenated words ("heavy-handed")
    r"|\.\.\.|--"  # ellipsis and dash as SST writes them
    r"|[^\w\s]"  # any other symbol on its own
)
_REPEAT = re.compile(r"([!?.,])\1{3,}")  # "!!!!!!" -> "!!!" (SST has at most a few)
_CONTROL = re.compile(r"[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202f\u2060-\u206f\ufeff]")


def tokenize(text: str) -> list[str]:
    """Raw or SST-style text -> SST-style lowercase tokens. Never raises on any ``str``."""
    text = unicodedata.normalize("NFKC", text)
    text = _CONTROL.sub(" ", text).translate(_QUOTES).lower()
    text = _PTB_RE.sub(lambda m: f" {_PTB[m.group(0)]} ", text)
    text = text.replace("\u2026", "...").replace("\u2014", " -- ").replace("\u2013", " -- ")
    text = _REPEAT.sub(r"\1\1\1", text)
    text = _NT.sub(r"\1 n't", text)
    text = text.replace("can n't", "ca n't").replace("won n't", "wo n't")
    text = _CLITIC.sub(r"\1 '\2", text)
    return _TOKEN.findall(text)


class Vocab:
    """Token <-> id. Id 0 is padding, id 1 the unknown word."""

    def __init__(self, tokens: Iterable[str]) -> None:
        self.itos: list[str] = [PAD, UNK]
        self.itos += [t for t in tokens if t not in (PAD, UNK)]
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(self.itos)}

    @classmethod
    def build(cls, texts: Iterable[str], min_count: int = 1, extra: Iterable[str] = ()) -> Vocab:
        """Words seen ``min_count`` times in ``texts`` (most frequent first), then ``extra`` words."""
        counts = Counter(t for text in texts for t in tokenize(text))
        words = [w for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_count]
        seen = set(words)
        words += [w for w in extra if w not in seen and not seen.add(w)]  # type: ignore[func-returns-value]
        return cls(words)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: list[str]) -> list[int]:
        return [self.stoi.get(t, 1) for t in tokens]

    def to_json(self) -> str:
        return json.dumps(self.itos, ensure_ascii=False)

    @classmethod
    def from_json(cls, data: str | bytes) -> Vocab:
        return cls(json.loads(data)[2:])
