"""The translator's thread: iteration-level (continuous) batching of the beam search.

Static batching decodes a batch until its longest hypothesis ends: a one-caption
greedy request that arrives just after a 64-caption beam-8 batch waits for all
of it, and rows that finished early ride along. Here the decode never stops
for a batch boundary (Orca's iteration-level scheduling; TGI and vLLM call it
continuous batching), using the exported program's methods
(``models/translation/search.py``):

    loop:
        admit    new texts while fewer than MAX_BATCH_SIZE are live: encode them (``start``),
                 add their hypotheses to the running decode (``join``)
        drop     the sentences of abandoned requests (``drop``)
        advance  every live hypothesis a few steps (``advance``: it returns early once a sentence completes)
        finish   take the complete sentences out (``finish``) and answer each request once all its texts are done

Sentences of any beam size and target language share each decoder call. A
sentence decodes the same tokens as it would alone. Each ``advance`` call is
sized to last about ``CALL_SECONDS`` when nobody is waiting (several steps per
call keep the Python overhead small) and one step when a request waits to join.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import torch

from models.translation.translate import pad, source_ids, translation
from service.http_guard import Call
from service.inference import TranslationModel, translation_result
from service.jobs import Job, JobQueue
from service.metrics import Metrics
from service.priority import lower_this_thread, name_this_thread
from service.schemas import TranslateRequest
from service.streams import on_own_stream

log = logging.getLogger("lstm_service")

CALL_SECONDS = 0.01  # target duration of one advance() call while nobody waits to join
MAX_STEPS_PER_CALL = 16


@dataclass(frozen=True)
class Sentence:
    """A live text: text ``index`` of ``job``, whose encoder input is ``src``."""

    job: Job[TranslateRequest]
    index: int
    src: list[int]


class TranslationBatcher:
    def __init__(self, model: TranslationModel, metrics: Metrics, max_live: int, max_wait_s: float, batching: bool = True, nice: int = 0) -> None:
        self.model, self.metrics = model, metrics
        self.nice = nice  # added to this thread's niceness (service/priority.py)
        self.max_live = max_live  # texts decoded at once (MAX_BATCH_SIZE)
        self.batching = batching  # off: one request at a time, decoded to the end
        self.queue: JobQueue[TranslateRequest] = JobQueue(max_wait_s)
        self.name = model.meta["name"]
        self.sids = itertools.count()  # sentence ids in the running decode
        self.thread = threading.Thread(target=self._run, name="translation-model", daemon=True)
        self.thread.start()

    async def submit(self, request: TranslateRequest, call: Call) -> list[dict[str, Any]]:
        """The request's results, in order, once all its texts have been decoded."""
        return await self.queue.submit(request, call)

    def _run(self) -> None:
        name_this_thread("lstm-translate")
        lower_this_thread(self.nice)
        with on_own_stream(self.model.device), torch.inference_mode():
            live: dict[int, Sentence] = {}  # by sentence id
            state: Any = None
            steps = 1
            while True:
                try:
                    state = self._admit(state, live)
                    state = self._drop_abandoned(state, live)
                    if not live:
                        state = None
                        continue
                    start = time.perf_counter()
                    waiting = len(self.queue) > 0 and len(live) < self.max_live
                    state = self.model.program.advance(state, 1 if waiting else steps)
                    done, state = self.model.program.finish(state)
                    seconds = time.perf_counter() - start
                    if not waiting:
                        steps = max(1, min(MAX_STEPS_PER_CALL, round(steps * CALL_SECONDS / max(seconds, 1e-6))))
                    self.metrics.observe_decode_call(self.name, seconds, [len(s.src) for s in live.values()])
                    self._answer(done, live)
                except Exception as e:  # answer the live requests with the error; keep serving the next ones
                    log.exception("translation decode failed")
                    for job in {s.job for s in live.values()}:
                        job.fail(e)
                    live.clear()
                    state = None

    def _admit(self, state: Any, live: dict[int, Sentence]) -> Any:
        """Add waiting texts to the running decode (blocking while nothing is live)."""
        if self.batching:
            taken = self.queue.take(self.max_live - len(live), block=not live)
        else:
            taken = self.queue.take(self.max_live, block=True, max_jobs=1) if not live else []
        if not taken:
            return state
        now = time.perf_counter()
        by_beam: dict[int, list[tuple[int, Sentence]]] = {}
        for part in taken:
            if part.start == 0:
                self.metrics.batch_wait_seconds.labels(self.name).observe(now - part.job.received)
            for index in range(part.start, part.stop):
                sentence = Sentence(part.job, index, source_ids(self.model.tok, part.job.request.texts[index]))
                self.metrics.input_tokens.labels(self.name).observe(len(sentence.src))
                by_beam.setdefault(part.job.request.beam_size, []).append((next(self.sids), sentence))
        for beam, sentences in sorted(by_beam.items()):
            state = self._start(state, beam, sentences)
            live.update(sentences)
        return state

    def _start(self, state: Any, beam: int, sentences: list[tuple[int, Sentence]]) -> Any:
        device = self.model.device
        ids, lengths = pad([s.src for _, s in sentences], device)
        langs = torch.tensor([self.model.tok.lang_ids[s.job.request.target] for _, s in sentences], device=device)
        sids = torch.tensor([sid for sid, _ in sentences], device=device)
        keep = torch.tensor([s.job.request.alignment for _, s in sentences], device=device)
        new = self.model.program.start(ids, lengths, langs, beam, sids, keep)
        return new if state is None else self.model.program.join(state, new)

    def _drop_abandoned(self, state: Any, live: dict[int, Sentence]) -> Any:
        gone = [sid for sid, s in live.items() if s.job.abandoned]
        if not gone:
            return state
        for sid in gone:
            del live[sid]
        return self.model.program.drop(state, torch.tensor(gone, device=self.model.device))

    def _answer(self, done: Any, live: dict[int, Sentence]) -> None:
        """Answer the texts that completed; a request resolves once all its texts are answered."""
        if done.sid.numel() == 0:
            return
        sids, lengths, scores = done.sid.tolist(), done.lengths.tolist(), done.scores.tolist()
        tokens = done.tokens.cpu()
        attn = done.attn.float().cpu() if done.attn.size(1) > 0 else None
        for j, sid in enumerate(sids):
            s = live.pop(sid)
            n = lengths[j]
            weights = attn[j, :n, : len(s.src)].tolist() if attn is not None and s.job.request.alignment else None
            result = translation_result(translation(self.model.tok, s.src, tokens[j, :n].tolist(), scores[j], weights))
            self.metrics.output_tokens.labels(self.name).observe(n)
            s.job.answer(s.index, result)
