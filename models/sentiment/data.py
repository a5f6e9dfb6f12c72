"""SST-2 (GLUE version) reading: ``train.tsv`` and ``dev.tsv`` with a header row.

The text column is named ``sentence`` in train and ``content`` in dev, so it is
found as "the column that is not ``label``".
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

LABELS = ("negative", "positive")


@dataclass(frozen=True)
class Example:
    text: str
    label: int  # 0 negative, 1 positive


def read_split(data_dir: str | Path, split: str) -> list[Example]:
    """Read ``{data_dir}/{split}.tsv``; raises FileNotFoundError naming the file."""
    path = Path(data_dir) / f"{split}.tsv"
    if not path.is_file():
        raise FileNotFoundError(f"SST-2 split not found: {path} (expected a GLUE-style TSV with a header row)")
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        label_col = header.index("label")
        text_col = next(i for i, name in enumerate(header) if name != "label")
        return [Example(row[text_col].strip(), int(row[label_col])) for row in reader if row]
