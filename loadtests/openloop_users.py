"""The Locust user of the open-loop load (``loadtests.openloop``): requests at a fixed arrival rate.

    OPEN_LOOP_PATH=/sentiment OPEN_LOOP_BODIES=bodies.json OPEN_LOOP_INTERVAL_S=1 \\
        locust -f loadtests/openloop_users.py --headless -u 900 -r 900 -t 12s --reset-stats --host http://127.0.0.1:3000

Each of the ``-u`` users sends one request every ``OPEN_LOOP_INTERVAL_S`` seconds
on its own schedule, the bodies of the JSON list in ``OPEN_LOOP_BODIES`` in turn,
so ``-u`` users make ``users / interval`` requests per second. Each schedule
starts at a random phase within the interval: Locust starts up to ``-r`` users at
the same instant, and in step they would send bursts. While an answer takes less
than the interval, a slow answer does not delay the next request: arrivals keep
their rate whatever the server does, as independent clients in production send
them (a closed loop, where each connection waits for its answer, slows down with
the server and so understates the tail). A user whose answers fall behind its
schedule sends at once until it catches up; when they cannot, the achieved rate
falls short of the target, and the runner reports it.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
from pathlib import Path

from locust import FastHttpUser, task

PATH = os.environ.get("OPEN_LOOP_PATH", "/sentiment")
BODIES = [json.dumps(b) for b in json.loads(Path(os.environ["OPEN_LOOP_BODIES"]).read_text())] if "OPEN_LOOP_BODIES" in os.environ else []
INTERVAL_S = float(os.environ.get("OPEN_LOOP_INTERVAL_S", "1"))
_turn = itertools.count()


class OpenLoopUser(FastHttpUser):
    network_timeout = 60.0
    connection_timeout = 60.0
    next_at = 0.0  # when this user's next request is due (time.monotonic)

    def on_start(self) -> None:
        time.sleep(random.uniform(0.0, INTERVAL_S))  # a random phase (gevent's sleep: Locust patches time)
        self.next_at = time.monotonic()

    def wait_time(self) -> float:
        self.next_at += INTERVAL_S
        return max(0.0, self.next_at - time.monotonic())

    @task
    def post(self) -> None:
        body = BODIES[next(_turn) % len(BODIES)]
        with self.client.post(PATH, data=body, headers={"Content-Type": "application/json"}, catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"HTTP {r.status_code}")
