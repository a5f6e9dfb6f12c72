"""A request on its way to a model thread, and the queue it waits in.

The event loop (HTTP) puts a :class:`Job` in its model's :class:`JobQueue` and
awaits the job's future; the model's thread takes texts from the queue, runs
the model and answers the future from its own thread (``call_soon_threadsafe``).
Each model has its own queue and thread, so a request for one model never
waits for the other model's work.

The queue also applies the two rules that hold before a text reaches a model:
a job whose request was abandoned (its client has gone, or its deadline passed:
see ``service.http_guard``) is dropped unanswered, and a job that has waited
``max_wait_s`` without any of its texts being taken is shed: answered 503 with
``Retry-After`` instead of being run late.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from bentoml.exceptions import ServiceUnavailable

from service.http_guard import Call
from service.schemas import TextsRequest

R = TypeVar("R", bound=TextsRequest)


@dataclass(eq=False)
class Job(Generic[R]):
    """One request: its texts are taken in order (possibly over several batches), its answer is one result per text."""

    request: R
    call: Call  # the HTTP guard's record: abandoned once the client has gone or the deadline passed
    future: asyncio.Future[list[Any]]
    received: float = field(default_factory=time.perf_counter)
    taken: int = 0  # texts handed to the model so far
    results: list[Any] = field(init=False)
    missing: int = field(init=False)  # texts not answered yet

    def __post_init__(self) -> None:
        self.results = [None] * len(self.request.texts)
        self.missing = len(self.request.texts)

    @property
    def abandoned(self) -> bool:
        return self.call.abandoned or self.future.done()  # done early: cancelled (shutdown) or failed

    def answer(self, index: int, result: Any) -> None:
        """The result of text ``index``; the future resolves when every text has one."""
        self.results[index] = result
        self.missing -= 1
        if self.missing == 0:
            self._settle(self.results, None)

    def fail(self, error: BaseException) -> None:
        self._settle(None, error)

    def _settle(self, value: list[Any] | None, error: BaseException | None) -> None:
        def settle() -> None:
            if self.future.done():
                return
            if error is not None:
                self.future.set_exception(error)
            else:
                self.future.set_result(value or [])

        self.future.get_loop().call_soon_threadsafe(settle)


@dataclass(frozen=True)
class Taken(Generic[R]):
    """Texts ``start``..``stop`` of ``job``, taken for one batch."""

    job: Job[R]
    start: int
    stop: int

    @property
    def texts(self) -> list[str]:
        return self.job.request.texts[self.start : self.stop]


class JobQueue(Generic[R]):
    """First come, first served; thread-safe. ``take`` hands out texts, splitting a job between batches when it does not fit."""

    def __init__(self, max_wait_s: float) -> None:
        self.max_wait_s = max_wait_s
        self._jobs: deque[Job[R]] = deque()
        self._ready = threading.Condition()

    async def submit(self, request: R, call: Call) -> list[Any]:
        """Queue ``request`` and wait for its results, one per text, in order (answered by the model's thread)."""
        job = Job(request, call, asyncio.get_running_loop().create_future())
        self.put(job)
        return await job.future

    def put(self, job: Job[R]) -> None:
        with self._ready:
            self._jobs.append(job)
            self._ready.notify()

    def __len__(self) -> int:
        return len(self._jobs)

    def lanes_waiting(self, lane: Callable[[R], int]) -> set[int]:
        """The lanes (see ``take_lanes``) that queued jobs wait for."""
        with self._ready:
            return {lane(job.request) for job in self._jobs if not job.abandoned}

    def take(self, room: int, block: bool, max_jobs: int | None = None) -> list[Taken[R]]:
        """Up to ``room`` texts, oldest job first (at most ``max_jobs`` jobs); with ``block``, waits until there are some."""
        return self.take_lanes([room], lambda _: 0, block, max_jobs)

    def take_lanes(self, rooms: list[int], lane: Callable[[R], int], block: bool, max_jobs: int | None = None) -> list[Taken[R]]:
        """Texts for several running batches (lanes): a job goes to lane ``lane(request)``, which takes up to
        ``rooms[lane]`` texts, oldest job first. A job that does not fit its lane waits there without holding back the
        other lane's jobs. With ``block``, waits until there are some texts to take."""
        with self._ready:
            while True:
                now = time.perf_counter()
                room = list(rooms)
                taken: list[Taken[R]] = []
                waiting: deque[Job[R]] = deque()
                for job in self._jobs:
                    if job.abandoned:
                        continue  # nobody reads the answer: no model time for it
                    if job.taken == 0 and now - job.received >= self.max_wait_s:
                        job.fail(ServiceUnavailable("the service is overloaded and shed this request; retry after the Retry-After delay"))
                        continue
                    k = lane(job.request)
                    if room[k] > 0 and (max_jobs is None or len(taken) < max_jobs):
                        n = min(room[k], len(job.request.texts) - job.taken)
                        taken.append(Taken(job, job.taken, job.taken + n))
                        job.taken += n
                        room[k] -= n
                    if job.taken < len(job.request.texts):
                        waiting.append(job)
                self._jobs = waiting
                if taken or not block:
                    return taken
                self._ready.wait()
