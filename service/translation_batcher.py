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

**Two lanes.** A decoder step costs about in proportion to the hypotheses (rows)
it advances, so a one-caption request that shares the decode with two
32-caption beam-4 requests (256 rows) would step at their pace: ~70 ms a step
on one CPU core, about a second for a caption. Requests of at most ``SHORT_ROWS``
rows (texts × beam size) therefore decode in a lane of their own, a second
running decode. The loop shares the thread's time between the busy lanes
fairly: the next ``advance`` call goes to the lane that has had the least
decoding time so far (a lane that becomes busy starts level with the others).
After one step of the 256-row long lane the short lane
gets as much time, ~70 ms, of its own small steps, enough to finish a caption, so a short
request waits for at most about one long step plus its own decode. The long
lane has all the time when no short request is live; uniform traffic uses one
lane. ``MAX_BATCH_SIZE`` counts the texts live in each lane.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
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
SHORT_ROWS = 8  # requests of at most this many hypotheses (texts x beam size) decode in the short lane


@dataclass(frozen=True)
class Sentence:
    """A live text: text ``index`` of ``job``, whose encoder input is ``src``."""

    job: Job[TranslateRequest]
    index: int
    src: list[int]


@dataclass
class Lane:
    """One running decode: the program's state, its live sentences by id, and the size of its next ``advance`` call."""

    state: Any = None
    live: dict[int, Sentence] = field(default_factory=dict)
    steps: int = 1  # decoder steps per advance call, sized to last about CALL_SECONDS
    used: float = 0.0  # seconds of advance calls so far: the lane with less goes next


def lane_of(request: TranslateRequest) -> int:
    """0: the short lane (at most SHORT_ROWS hypotheses), 1: the long lane."""
    return 0 if len(request.texts) * request.beam_size <= SHORT_ROWS else 1


class TranslationBatcher:
    def __init__(self, model: TranslationModel, metrics: Metrics, max_live: int, max_wait_s: float, batching: bool = True, nice: int = 0) -> None:
        self.model, self.metrics = model, metrics
        self.nice = nice  # added to this thread's niceness (service/priority.py)
        self.max_live = max_live  # texts decoded at once in each lane (MAX_BATCH_SIZE)
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
        lower_this_thread(self.nice)
        name_this_thread("lstm-translate")
        with on_own_stream(self.model.device), torch.inference_mode():
            lanes = [Lane(), Lane()]  # short, long
            while True:
                try:
                    idle = [not lane.live for lane in lanes]
                    self._admit(lanes)
                    for lane in lanes:
                        self._drop_abandoned(lane)
                        if not lane.live:
                            lane.state = None  # a drained lane starts its next decode afresh
                    busy = [k for k, lane in enumerate(lanes) if lane.live]
                    if not busy:  # both lanes drained: their times restart; each keeps its call size for the next decode
                        for lane in lanes:
                            lane.used = 0.0
                        continue
                    for k in busy:  # a lane that just became busy starts level with the others: no credit for its idle time
                        if idle[k]:
                            lanes[k].used = max([lanes[k].used] + [lanes[j].used for j in busy if not idle[j]])
                    k = min(busy, key=lambda j: lanes[j].used)  # the lane that has had the least decoding time goes next
                    queued = self.queue.lanes_waiting(lane_of) if len(self.queue) else set()
                    self._advance(lanes[k], waiting=k in queued and len(lanes[k].live) < self.max_live)
                except Exception as e:  # answer the live requests with the error; keep serving the next ones
                    log.exception("translation decode failed")
                    for job in {s.job for lane in lanes for s in lane.live.values()}:
                        job.fail(e)
                    lanes = [Lane(), Lane()]

    @staticmethod
    def _live(lanes: list[Lane]) -> int:
        return sum(len(lane.live) for lane in lanes)

    def _advance(self, lane: Lane, waiting: bool) -> None:
        """One advance + finish call of ``lane``: a few steps (one while a request waits to join); complete sentences answered."""
        start = time.perf_counter()
        lane.state = self.model.program.advance(lane.state, 1 if waiting else lane.steps)
        done, lane.state = self.model.program.finish(lane.state)
        seconds = time.perf_counter() - start
        lane.used += seconds
        if not waiting:
            lane.steps = max(1, min(MAX_STEPS_PER_CALL, round(lane.steps * CALL_SECONDS / max(seconds, 1e-6))))
        self.metrics.observe_decode_call(self.name, seconds, [len(s.src) for s in lane.live.values()])
        self._answer(done, lane.live)

    def _admit(self, lanes: list[Lane]) -> None:
        """Add waiting texts to the running decodes, each to its request's lane, while the lane has fewer than
        MAX_BATCH_SIZE texts live (blocking while nothing is live): a full long lane does not hold short requests back."""
        live = self._live(lanes)
        if self.batching:
            rooms = [self.max_live - len(lane.live) for lane in lanes]
            taken = self.queue.take_lanes(rooms, lane_of, block=live == 0)
        else:
            taken = self.queue.take(self.max_live, block=True, max_jobs=1) if live == 0 else []
        if not taken:
            return
        now = time.perf_counter()
        groups: dict[tuple[int, int], list[tuple[int, Sentence]]] = {}  # by (lane, beam size)
        for part in taken:
            if part.start == 0:
                self.metrics.batch_wait_seconds.labels(self.name).observe(now - part.job.received)
            request = part.job.request
            for index in range(part.start, part.stop):
                sentence = Sentence(part.job, index, source_ids(self.model.tok, request.texts[index]))
                self.metrics.input_tokens.labels(self.name).observe(len(sentence.src))
                groups.setdefault((lane_of(request), request.beam_size), []).append((next(self.sids), sentence))
        for (lane, beam), sentences in sorted(groups.items()):
            self._start(lanes[lane], beam, sentences)

    def _start(self, lane: Lane, beam: int, sentences: list[tuple[int, Sentence]]) -> None:
        """Encode ``sentences`` (one beam size) and add their hypotheses to ``lane``'s decode."""
        device = self.model.device
        ids, lengths = pad([s.src for _, s in sentences], device)
        langs = torch.tensor([self.model.tok.lang_ids[s.job.request.target] for _, s in sentences], device=device)
        sids = torch.tensor([sid for sid, _ in sentences], device=device)
        keep = torch.tensor([s.job.request.alignment for _, s in sentences], device=device)
        new = self.model.program.start(ids, lengths, langs, beam, sids, keep)
        lane.state = new if lane.state is None else self.model.program.join(lane.state, new)
        lane.live.update(sentences)

    def _drop_abandoned(self, lane: Lane) -> None:
        gone = [sid for sid, s in lane.live.items() if s.job.abandoned]
        if not gone:
            return
        for sid in gone:
            del lane.live[sid]
        lane.state = self.model.program.drop(lane.state, torch.tensor(gone, device=self.model.device))

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
