"""BLEU of a translation artifact on Multi30k test_2016_flickr, through the serving Python API.

    python -m models.translation.evaluate --data-dir ../shared/data/multi30k [--artifact PATH] [--beams 1 4]
    python -m models.translation.evaluate --data-dir ../shared/data/multi30k --split val --beams 4 --alphas 0.7 1.0 1.3

sacreBLEU on detokenized output, both cased (as-is) and ``lowercase=True`` (the
convention of the published Multi30k results). ``--alphas`` overrides the
length-penalty exponent stored in the program (``score / length**alpha`` picks
the final hypothesis), to tune it on ``--split val``.

``--moses`` also prints BLEU on Moses-tokenized, lowercased text (``sacremoses``;
``tokenize="none"`` after tokenizing both sides), the form in which the
published Multi30k figures are computed, so the two can be compared directly.
The reported and recorded figures stay sacreBLEU's own.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from models.translation.data import read_pairs


def test_bleu(
    artifact: str | Path,
    data_dir: str | Path,
    beams: tuple[int, ...] = (1, 4),
    split: str = "test",
    verify: bool = False,
    alpha: float | None = None,
    moses: bool = False,
) -> list[dict[str, Any]]:
    import sacrebleu

    from service.inference import load_translation_model

    tm = load_translation_model(artifact, verify=verify)
    if alpha is not None:
        tm.program.alpha = alpha  # a plain attribute of the scripted BeamSearch
    scores = []
    for source, target in tm.pairs:
        data = read_pairs(data_dir, split, source, target)
        srcs, refs = [s for s, _ in data], [t for _, t in data]
        for beam in beams:
            hyps = tm.translate_all(srcs, target, beam)
            for lowercase in (False, True):
                value = sacrebleu.corpus_bleu(hyps, [refs], lowercase=lowercase).score
                scores.append(
                    {
                        "dataset": "Multi30k",
                        "split": "test_2016_flickr" if split == "test" else split,
                        "pair": f"{source}-{target}",
                        "metric": "bleu_lowercase" if lowercase else "bleu",
                        "beam_size": beam,
                        "value": round(value, 2),
                    }
                )
                alpha_note = "" if alpha is None else f" alpha {alpha:g}"
                print(f"{source}->{target} {split} beam {beam}{alpha_note} {'lowercase' if lowercase else 'cased'}: BLEU {value:.2f}", flush=True)
            if moses:
                print(f"{source}->{target} {split} beam {beam}{alpha_note} Moses-tokenized lowercase: BLEU {moses_bleu(hyps, refs, target):.2f}", flush=True)
    return scores


def moses_bleu(hyps: list[str], refs: list[str], lang: str) -> float:
    """Lowercased BLEU on Moses-tokenized text (how the shared-task papers scored Multi30k)."""
    import sacrebleu
    from sacremoses import MosesTokenizer

    tok = MosesTokenizer(lang)

    def split(s: str) -> str:
        return str(tok.tokenize(s, return_str=True, escape=False))

    return float(sacrebleu.corpus_bleu([split(h) for h in hyps], [[split(r) for r in refs]], lowercase=True, tokenize="none").score)


def main() -> None:
    from models.manifest import ARTIFACTS_DIR

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--artifact", default=str(ARTIFACTS_DIR / "translator-lstm.pt"))
    ap.add_argument("--beams", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--split", choices=["test", "val"], default="test", help="test_2016_flickr (reported) or val (for tuning)")
    ap.add_argument("--alphas", type=float, nargs="+", help="length-penalty exponents to try instead of the program's own")
    ap.add_argument("--moses", action="store_true", help="also print lowercase BLEU on Moses-tokenized text (needs sacremoses)")
    args = ap.parse_args()
    for alpha in args.alphas or [None]:
        test_bleu(args.artifact, args.data_dir, tuple(args.beams), args.split, verify=True, alpha=alpha, moses=args.moses)


if __name__ == "__main__":
    main()
