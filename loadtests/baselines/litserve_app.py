"""Baseline (d) of ``make bench``: the same models in LitServe, with LitServe's batching.

    TORCH_THREADS=2 python -m loadtests.baselines.litserve_app --port 8002

Two ``LitAPI``s (``/sentiment``, ``/translate``) over the project's Python API
(``service.inference``), each with ``LITSERVE_WORKERS`` inference worker
processes (default 1), ``LITSERVE_API_SERVERS`` API server processes (default
1), ``TORCH_THREADS`` intra-op threads per worker. ``make bench`` runs it in
every layout of the machine's cores (workers x threads) and compares with the best.
LitServe batches *requests*: it collects up to ``LITSERVE_MAX_BATCH_SIZE``
requests (default 64), waiting at most ``LITSERVE_BATCH_TIMEOUT_MS`` (default
5 ms) after the first, and ``predict`` runs their texts as one model call (for
translation one call per beam size, language pairs mixed, as the service
does). ``fast_queue`` (ZeroMQ between the processes) is on, access logs off.
Why these defaults: 64 requests lets one batch take every waiting request at
the 64 connections where the targets are measured (the service's own ceiling,
128 texts, is of the same order), and 5 ms is short next to a model call, so
at low load a request waits little for company. They were not tuned by a sweep;
``make bench`` passes them explicitly (``loadtests/bench.py``).

``decode_request``'s argument and ``encode_response``'s result are left without
type annotations on purpose: LitServe turns them into the endpoint's FastAPI
request and response types, and unannotated means its plain JSON path.
"""

import argparse
import os
from typing import Any

import litserve as ls
import torch

from service.inference import load_sentiment, load_translation_model

THREADS = int(os.environ.get("TORCH_THREADS") or os.cpu_count() or 1)
MAX_BATCH_SIZE = int(os.environ.get("LITSERVE_MAX_BATCH_SIZE", "64"))
BATCH_TIMEOUT_S = float(os.environ.get("LITSERVE_BATCH_TIMEOUT_MS", "5")) / 1000
WORKERS = int(os.environ.get("LITSERVE_WORKERS", "1"))  # inference worker processes per API
API_SERVERS = int(os.environ.get("LITSERVE_API_SERVERS", "1"))  # HTTP server processes


def split(flat: list[Any], sizes: list[int]) -> list[list[Any]]:
    out, start = [], 0
    for n in sizes:
        out.append(flat[start : start + n])
        start += n
    return out


class SentimentAPI(ls.LitAPI):
    def setup(self, device: str) -> None:
        torch.set_num_threads(THREADS)
        self.model = load_sentiment(device=device)
        self.model.predict(["a gorgeous , witty , seductive movie ."])

    def decode_request(self, request) -> list[str]:  # type: ignore[no-untyped-def]
        return list(request["texts"])

    def batch(self, inputs: list[list[str]]) -> list[list[str]]:
        return inputs

    def predict(self, x: list[list[str]]) -> list[list[dict[str, Any]]]:
        """Many requests' texts in one model call."""
        flat = [t for texts in x for t in texts]
        return split(self.model.predict(flat), [len(texts) for texts in x])

    def unbatch(self, output: list[list[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
        return output

    def encode_response(self, output: list[dict[str, Any]]):  # type: ignore[no-untyped-def]
        return output


class TranslateAPI(ls.LitAPI):
    def setup(self, device: str) -> None:
        torch.set_num_threads(THREADS)
        self.model = load_translation_model(device=device)
        self.model.run(["A man in a blue shirt is riding a bike."] * 2, ["de", "fr"], 4)

    def decode_request(self, request) -> dict[str, Any]:  # type: ignore[no-untyped-def]
        return {"texts": list(request["texts"]), "target": request["target"], "beam_size": int(request.get("beam_size", 4))}

    def batch(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return inputs

    def predict(self, x: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        """One model call per beam size for all requests' texts; language pairs mix in a call."""
        results: list[list[dict[str, Any]]] = [[] for _ in x]
        for beam in sorted({r["beam_size"] for r in x}):
            idx = [i for i, r in enumerate(x) if r["beam_size"] == beam]
            texts = [t for i in idx for t in x[i]["texts"]]
            targets = [x[i]["target"] for i in idx for _ in x[i]["texts"]]
            out = self.model.run(texts, targets, beam)[0]
            for i, part in zip(idx, split(out, [len(x[i]["texts"]) for i in idx]), strict=True):
                results[i] = part
        return results

    def unbatch(self, output: list[list[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
        return output

    def encode_response(self, output: list[dict[str, Any]]):  # type: ignore[no-untyped-def]
        return output


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=8002)
    args = ap.parse_args()
    apis = [
        SentimentAPI(max_batch_size=MAX_BATCH_SIZE, batch_timeout=BATCH_TIMEOUT_S, api_path="/sentiment"),
        TranslateAPI(max_batch_size=MAX_BATCH_SIZE, batch_timeout=BATCH_TIMEOUT_S, api_path="/translate"),
    ]
    device = os.environ.get("DEVICE", "auto")
    accelerator = "cuda" if device.startswith("cuda") else "cpu" if device == "cpu" else "auto"
    server = ls.LitServer(apis, accelerator=accelerator, workers_per_device=WORKERS, fast_queue=True)
    server.run(host="127.0.0.1", port=args.port, num_api_servers=API_SERVERS, log_level="warning", generate_client_file=False, access_log=False)


if __name__ == "__main__":
    main()
