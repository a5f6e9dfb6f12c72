"""Dev accuracy of a sentiment artifact, measured through the serving Python API.

python -m models.sentiment.evaluate --data-dir ../shared/data/sst2 [--artifact PATH]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from models.sentiment.data import LABELS, read_split


def dev_accuracy(artifact: str | Path, data_dir: str | Path, batch_size: int = 128, verify: bool = False) -> float:
    from service.inference import load_sentiment

    clf = load_sentiment(artifact, verify=verify)
    dev = read_split(data_dir, "dev")
    correct = 0
    for s in tqdm(range(0, len(dev), batch_size), desc="dev", unit="batch", leave=False):
        chunk = dev[s : s + batch_size]
        for ex, out in zip(chunk, clf.predict([e.text for e in chunk]), strict=False):
            correct += out["label"] == LABELS[ex.label]
    return correct / len(dev)


def main() -> None:
    from models.manifest import ARTIFACTS_DIR

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--artifact", default=str(ARTIFACTS_DIR / "sentiment-bilstm.pt"))
    args = ap.parse_args()
    acc = dev_accuracy(args.artifact, args.data_dir, verify=True)
    print(f"SST-2 dev accuracy: {acc:.4f} ({args.artifact})")


if __name__ == "__main__":
    main()
