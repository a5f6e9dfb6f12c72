"""Sequence-level knowledge distillation data (Kim & Rush 2016): a teacher's beam output on the training sources.

    python -m models.translation.distill --teacher models/artifacts/translator-lstm-ensemble.pt \\
        --data-dir ../shared/data/multi30k --out runs/distilled

Writes a folder shaped like Multi30k: ``train.en.gz`` (the training sources as they are),
``train.de.gz`` and ``train.fr.gz`` (the teacher's beam-search translations of them), and links
to the original validation and test files. ``models.translation.train --data-dir runs/distilled``
then trains a student on what the teacher says, selecting epochs on the real validation
references. A student trained so decodes greedily nearly as well as with a beam, since the
teacher's beam output is what it learned to produce one token at a time.

The sources are decoded in chunks of ``--chunk`` sentences, each saved when done
(``chunks/{lang}-{n}.txt``); rerunning the command resumes after the last saved chunk.
"""

from __future__ import annotations

import argparse
import gzip
import os
from pathlib import Path

import torch
from tqdm import tqdm

from models.translation.data import SPLITS, read_lines


def chunk_path(out: Path, lang: str, n: int) -> Path:
    return out / "chunks" / f"{lang}-{n:04d}.txt"


def distill(teacher: str, data_dir: str, out: Path, langs: list[str], beam: int, chunk: int, limit: int = 0) -> None:
    """Decode the training sources into each of ``langs`` with ``teacher``, chunk by chunk, then write the data folder."""
    from service.inference import load_translation_model

    model = load_translation_model(teacher, device="cpu", verify=False)
    sources = [s.strip() for s in read_lines(data_dir, "train", "en")]
    sources = sources[:limit] if limit else sources
    (out / "chunks").mkdir(parents=True, exist_ok=True)
    starts = range(0, len(sources), chunk)
    todo = [(lang, n) for lang in langs for n in range(len(starts)) if not chunk_path(out, lang, n).is_file()]
    with tqdm(total=len(langs) * len(sources), desc=f"teacher beam {beam}", unit="sent", mininterval=10) as bar:
        bar.update(len(langs) * len(sources) - sum(len(sources[starts[n] : starts[n] + chunk]) for _, n in todo))
        for lang, n in todo:
            texts = sources[starts[n] : starts[n] + chunk]
            with torch.inference_mode():
                hyps = model.translate_all(texts, lang, beam)
            tmp = chunk_path(out, lang, n).with_suffix(".tmp")
            tmp.write_text("".join(h.replace("\n", " ") + "\n" for h in hyps), encoding="utf-8")
            tmp.rename(chunk_path(out, lang, n))  # a chunk exists only once complete
            bar.update(len(texts))
    write_folder(out, data_dir, sources, langs, len(starts))


def write_folder(out: Path, data_dir: str, sources: list[str], langs: list[str], chunks: int) -> None:
    """``train.{en,langs}.gz`` from the sources and the chunks; the other splits linked to ``data_dir``'s."""
    with gzip.open(out / "train.en.gz", "wt", encoding="utf-8") as f:
        f.writelines(s + "\n" for s in sources)
    for lang in langs:
        lines = [line for n in range(chunks) for line in chunk_path(out, lang, n).read_text(encoding="utf-8").splitlines()]
        if len(lines) != len(sources):
            raise SystemExit(f"{lang}: {len(lines)} translations for {len(sources)} sources; delete {out / 'chunks'} and rerun")
        with gzip.open(out / f"train.{lang}.gz", "wt", encoding="utf-8") as f:
            f.writelines(line + "\n" for line in lines)
    for split in ("val", "test"):
        for lang in ["en", *langs]:
            link = out / f"{SPLITS[split]}.{lang}.gz"
            if not link.exists():
                os.symlink(Path(data_dir).resolve() / link.name, link)
    print(f"distilled training data in {out}: {len(sources)} sources, targets {', '.join(langs)}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", required=True, help="translation artifact whose beam output becomes the targets (an ensemble, say)")
    ap.add_argument("--data-dir", required=True, help="Multi30k folder with train.en.gz and the val/test files")
    ap.add_argument("--out", type=Path, default=Path("runs/distilled"))
    ap.add_argument("--langs", nargs="+", default=["de", "fr"])
    ap.add_argument("--beam", type=int, default=4)
    ap.add_argument("--chunk", type=int, default=1000, help="sentences per saved chunk (the unit of resuming)")
    ap.add_argument("--limit", type=int, default=0, help="first N training sentences only (smoke tests)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    distill(args.teacher, args.data_dir, args.out, args.langs, args.beam, args.chunk, args.limit)


if __name__ == "__main__":
    main()
