"""Load shapes for Locust: users over time for a linear ramp and a staircase.

The locustfile turns one on with ``LOAD_SHAPE=ramp`` or ``LOAD_SHAPE=step``
(``make loadtest SHAPE=step``), sized by Locust's own ``-u`` (peak users) and
``-t`` (run time); without it Locust runs its usual constant load. Plain
functions, so they can be checked without importing Locust (which
monkey-patches the standard library with gevent).
"""

from __future__ import annotations

import math


def ramp_users(t: float, peak: int, run_time: float) -> int | None:
    """Users grow linearly from 1 to ``peak`` over the first 80% of the run, then hold; None once the run is over."""
    if t >= run_time:
        return None
    return max(1, math.ceil(peak * min(1.0, t / (0.8 * run_time))))


def step_users(t: float, peak: int, run_time: float, steps: int = 5) -> int | None:
    """``steps`` equal stairs from ``peak/steps`` users up to ``peak``, each held for ``run_time/steps``; None once over."""
    if t >= run_time:
        return None
    step = min(steps, int(t / (run_time / steps)) + 1)
    return max(1, math.ceil(peak * step / steps))


SHAPES = {"ramp": ramp_users, "step": step_users}
