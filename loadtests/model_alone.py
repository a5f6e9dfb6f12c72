"""The ceiling: the models through the Python API, no HTTP, at several batch sizes (system (e) of ``make bench``).

    python -m loadtests.model_alone --task sentiment --batch-sizes 32 64 128 256 --seconds 3

For each batch size, calls the model back to back on batches of the benchmark's
texts (``loadtests.texts``, taken in turn) for ``--seconds`` and prints one JSON
line: ``{"task", "batch_size", "texts_per_s", "ms_per_batch"}``. Tokenization
and result building are included (they are part of every request's work); HTTP,
JSON and batching across requests are not. Threads: ``TORCH_THREADS`` (default:
all cores), as for the service.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time

import torch

from loadtests.texts import CAPTIONS, REVIEWS
from service.inference import load_sentiment, load_translation_model


def batches(pool: list[str], size: int) -> itertools.cycle[list[str]]:
    texts = itertools.cycle(pool)
    return itertools.cycle([[next(texts) for _ in range(size)] for _ in range(len(pool))])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", choices=["sentiment", "translate"], required=True)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 64, 128, 256])
    ap.add_argument("--beam-size", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=3.0, help="per batch size, after one warm-up call")
    ap.add_argument("--device", default=os.environ.get("DEVICE", "auto"))
    ap.add_argument("--start-at", type=float, default=0.0, help="Unix time to start measuring at, after loading (several processes in step)")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("TORCH_THREADS") or os.cpu_count() or 1))

    if args.task == "sentiment":
        clf = load_sentiment(device=args.device)
        pool = REVIEWS

        def call(texts: list[str]) -> None:
            clf.predict(texts)
    else:
        model = load_translation_model(device=args.device)
        pool = CAPTIONS
        targets = [t for _, t in model.pairs]

        def call(texts: list[str]) -> None:
            model.run(texts, [targets[i % len(targets)] for i in range(len(texts))], args.beam_size)

    for size in args.batch_sizes:  # warm-up (TorchScript's profiling runs, allocator)
        call(next(batches(pool, size)))
    time.sleep(max(0.0, args.start_at - time.time()))
    for size in args.batch_sizes:
        source = batches(pool, size)
        calls = 0
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < args.seconds or calls < 2:
            call(next(source))
            calls += 1
        row = {"task": args.task, "batch_size": size, "texts_per_s": size * calls / elapsed, "ms_per_batch": 1000 * elapsed / calls}
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
