"""Which CPU kernels should run the LSTMs: oneDNN's or PyTorch's own? Model time of the shipped programs, both ways.

    python -m experiments.lstm_kernels [--seconds 4] [--threads 1]

``torch.backends.mkldnn.enabled`` decides whether ``aten::lstm`` on the CPU
runs oneDNN's RNN primitive (``aten::mkldnn_rnn_layer``) or PyTorch's own loop
of matrix products. The flag is read at each call, so the two are timed in
turn in one process, on the same inputs (machine noise hits both alike): the
translator's static call (``forward``) on the 13-word benchmark sentence
(greedy and beam 4) and on batches of captions, and the sentiment program on
batches of reviews. The ratio own / oneDNN is what to read.

Then, on PyTorch's own kernels, the translator with its weights in fp16 (as
stored) against fp32 (as the service runs them on the CPU): a second copy of
the program, called in turn.

Answered on 6 December 2026 (docs/performance.md): the service now runs on
PyTorch's own kernels (``models/torchscript.py``, ``use_native_lstm_kernels``).
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable

import torch

from experiments.int8_check import alternate
from loadtests.texts import CAPTIONS, REVIEWS
from models.translation.translate import pad, source_ids
from service.inference import load_sentiment, load_translation_model

SENTENCE = "A man in a blue shirt is riding a bike down the street."  # the benchmark's 13-word caption


def with_kernels(onednn: bool, f: Callable[[], object]) -> object:
    torch.backends.mkldnn.enabled = onednn  # type: ignore[assignment]
    return f()


def compare(name: str, f: Callable[[], object], seconds: float) -> None:
    ms = alternate({"oneDNN": functools.partial(with_kernels, True, f), "own": functools.partial(with_kernels, False, f)}, seconds)
    print(f"{name:38s} oneDNN {ms['oneDNN']:8.2f} ms   own {ms['own']:8.2f} ms   own/oneDNN {ms['own'] / ms['oneDNN']:.2f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=4.0, help="per comparison")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the service's default on this machine: 1)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    tr = load_translation_model(device="cpu")

    def translate(texts: list[str], beam: int, program: torch.jit.ScriptModule = tr.program) -> Callable[[], object]:
        ids, lengths = pad([source_ids(tr.tok, t) for t in texts], "cpu")
        langs = torch.full((len(texts),), tr.tok.lang_ids["de"], dtype=torch.long)
        return lambda: program(ids, lengths, langs, beam)

    clf = load_sentiment(device="cpu")
    with torch.inference_mode():
        compare("translate 13-word sentence, greedy", translate([SENTENCE], 1), args.seconds)
        compare("translate 13-word sentence, beam 4", translate([SENTENCE], 4), args.seconds)
        for n in (8, 32):
            texts = (CAPTIONS * n)[:n]
            compare(f"translate {n} captions, beam 4", translate(texts, 4), args.seconds)
        for n in (1, 8, 32, 128):
            texts = (REVIEWS * n)[:n]
            compare(f"sentiment {n} reviews", functools.partial(clf.predict, texts), args.seconds)

        torch.backends.mkldnn.enabled = False  # type: ignore[assignment]
        half = load_translation_model(device="cpu").program.half()
        for texts, beam in (([SENTENCE], 1), ([SENTENCE], 4), ((CAPTIONS * 8)[:8], 4), ((CAPTIONS * 32)[:32], 4)):
            ms = alternate({"fp32": translate(texts, beam), "fp16": translate(texts, beam, half)}, args.seconds)
            what = f"translate {len(texts)} text(s), beam {beam}"
            print(f"{what:38s} fp32   {ms['fp32']:8.2f} ms   fp16 {ms['fp16']:8.2f} ms   fp16/fp32 {ms['fp16'] / ms['fp32']:.2f}", flush=True)


if __name__ == "__main__":
    main()
