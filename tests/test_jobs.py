"""The model threads' queue (service.jobs), without a server: how texts are handed out, split, skipped and shed."""

from __future__ import annotations

import asyncio

import pytest
from bentoml.exceptions import ServiceUnavailable

from service.http_guard import Call
from service.jobs import Job, JobQueue
from service.schemas import SentimentRequest


def job(n: int, call: Call | None = None) -> Job[SentimentRequest]:
    return Job(SentimentRequest(texts=[f"text {i}" for i in range(n)]), call or Call(), asyncio.get_running_loop().create_future())


def spans(taken: list) -> list[tuple[int, int, int]]:
    return [(id(t.job), t.start, t.stop) for t in taken]


def test_texts_are_taken_oldest_first_and_a_request_is_split_between_batches() -> None:
    async def main() -> None:
        q: JobQueue[SentimentRequest] = JobQueue(max_wait_s=60)
        a, b, c = job(3), job(4), job(2)
        for j in (a, b, c):
            q.put(j)
        first = q.take(room=5, block=False)
        assert spans(first) == [(id(a), 0, 3), (id(b), 0, 2)]
        assert first[1].texts == ["text 0", "text 1"]
        second = q.take(room=5, block=False)
        assert spans(second) == [(id(b), 2, 4), (id(c), 0, 2)]
        assert second[0].texts == ["text 2", "text 3"]
        assert q.take(room=5, block=False) == [] and len(q) == 0

    asyncio.run(main())


def test_max_jobs_takes_one_request_per_batch() -> None:
    async def main() -> None:
        q: JobQueue[SentimentRequest] = JobQueue(max_wait_s=60)
        a, b = job(1), job(1)
        q.put(a)
        q.put(b)
        assert spans(q.take(room=10, block=False, max_jobs=1)) == [(id(a), 0, 1)]
        assert spans(q.take(room=10, block=False, max_jobs=1)) == [(id(b), 0, 1)]

    asyncio.run(main())


def test_an_abandoned_request_is_never_taken() -> None:
    async def main() -> None:
        q: JobQueue[SentimentRequest] = JobQueue(max_wait_s=60)
        gone, cancelled, kept = job(2, Call()), job(2), job(1)
        gone.call.abandoned = True  # its client left, or its deadline passed (service.http_guard)
        cancelled.future.cancel()
        for j in (gone, cancelled, kept):
            q.put(j)
        assert spans(q.take(room=10, block=False)) == [(id(kept), 0, 1)]

    asyncio.run(main())


def test_a_request_that_waited_past_the_budget_is_shed_with_503_unless_it_has_started() -> None:
    async def main() -> None:
        q: JobQueue[SentimentRequest] = JobQueue(max_wait_s=60)
        started = job(4)
        q.put(started)
        assert spans(q.take(room=2, block=False)) == [(id(started), 0, 2)]
        q.max_wait_s = 0.0  # from now on every request has waited too long
        late = job(1)
        q.put(late)
        assert spans(q.take(room=10, block=False)) == [(id(started), 2, 4)]  # a request under way is finished, not shed
        await asyncio.sleep(0)  # the answer is handed to the event loop
        with pytest.raises(ServiceUnavailable, match="overloaded and shed"):
            late.future.result()

    asyncio.run(main())


def test_a_request_resolves_once_every_text_is_answered_in_its_order() -> None:
    async def main() -> None:
        j = job(3)
        j.answer(2, "c")
        j.answer(0, "a")
        await asyncio.sleep(0)
        assert not j.future.done()
        j.answer(1, "b")
        assert await j.future == ["a", "b", "c"]

    asyncio.run(main())


def test_take_blocks_until_a_request_arrives() -> None:
    async def main() -> None:
        q: JobQueue[SentimentRequest] = JobQueue(max_wait_s=60)
        j = job(1)
        taking = asyncio.get_running_loop().run_in_executor(None, lambda: q.take(room=1, block=True))
        await asyncio.sleep(0.05)
        assert not taking.done()
        q.put(j)
        assert spans(await taking) == [(id(j), 0, 1)]

    asyncio.run(main())


def test_a_full_lane_does_not_hold_back_the_other_lanes_requests() -> None:
    """take_lanes (the translator's two running decodes): each job goes to its lane, oldest first within the lane;
    a long request waiting for room in its lane lets a later short request through."""

    async def main() -> None:
        q: JobQueue[SentimentRequest] = JobQueue(max_wait_s=60)
        long1, long2, short1, short2 = job(6), job(6), job(1), job(2)
        for j in (long1, long2, short1, short2):
            q.put(j)
        lane = lambda r: 1 if len(r.texts) > 2 else 0  # noqa: E731
        assert q.lanes_waiting(lane) == {0, 1}
        assert spans(q.take_lanes([2, 8], lane, block=False)) == [(id(long1), 0, 6), (id(long2), 0, 2), (id(short1), 0, 1), (id(short2), 0, 1)]
        assert q.lanes_waiting(lane) == {0, 1}  # long2 and short2 wait for room in their lanes
        assert spans(q.take_lanes([0, 0], lane, block=False)) == []
        assert spans(q.take_lanes([5, 0], lane, block=False)) == [(id(short2), 1, 2)]
        assert q.lanes_waiting(lane) == {1} and len(q) == 1

    asyncio.run(main())
