"""Multi30k task 1 reading: ``{split}.{lang}.gz``, one sentence per line, aligned across languages."""

from __future__ import annotations

import gzip
from pathlib import Path

SPLITS = {"train": "train", "val": "val", "test": "test_2016_flickr"}


def read_lines(data_dir: str | Path, split: str, lang: str) -> list[str]:
    path = Path(data_dir) / f"{SPLITS.get(split, split)}.{lang}.gz"
    if not path.is_file():
        raise FileNotFoundError(f"Multi30k file not found: {path}")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def read_pairs(data_dir: str | Path, split: str, source: str, target: str) -> list[tuple[str, str]]:
    src, tgt = read_lines(data_dir, split, source), read_lines(data_dir, split, target)
    if len(src) != len(tgt):
        raise ValueError(f"{split}: {len(src)} {source} lines but {len(tgt)} {target} lines")
    return [(s.strip(), t.strip()) for s, t in zip(src, tgt, strict=False) if s.strip() and t.strip()]
