"""The translator's slowest valid input: how long one request of random letters takes (for sizing MAX_TRANSLATE_WORK).

    python -m experiments.worst_case                                  # the shapes below, one thread
    python -m experiments.worst_case --shape 16x2000x1 --threads 2    # texts x characters x beam

Random letters are not language, so the decoder never chooses ``</s>`` early
and runs to its length cap: the worst case a client can send within the
per-text limits. The model is called directly (the Python API), as one batch.
"""

from __future__ import annotations

import argparse
import random
import string
import time

import torch

from service.inference import load_translation_model

SHAPES = ["8x1000x4", "16x2000x1", "8x2000x8"]


def random_letters(n: int, chars: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(string.ascii_letters + " ") for _ in range(chars)) for _ in range(n)]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", action="append", help=f"TEXTSxCHARSxBEAM (repeatable; default: {', '.join(SHAPES)})")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_translation_model()
    for shape in args.shape or SHAPES:
        n, chars, beam = (int(x) for x in shape.split("x"))
        texts = random_letters(n, chars)
        start = time.perf_counter()
        model.run(texts, ["de"] * n, beam)
        seconds = time.perf_counter() - start
        print(f"{n} texts x {chars} characters x beam {beam} (work {n * chars * beam}): {seconds:.1f} s", flush=True)


if __name__ == "__main__":
    main()
