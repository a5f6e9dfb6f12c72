"""How fast the machine is right now: a fixed pure-Python loop on every core at once, in loop iterations per second.

A shared virtual machine's speed drifts (other tenants, host load): the benchmark's
repeatability runs take this probe just before each run, so a run that is slow
because the machine was slow can be told from one that is slow because of the
service (``python -m loadtests.bench --only repeat``).
"""

from __future__ import annotations

import subprocess
import sys

from service.config import usable_cores

# each process counts loop iterations until ``seconds`` have passed, then prints the count
_LOOP = """
import sys, time
end = time.perf_counter() + float(sys.argv[1])
n = 0
while time.perf_counter() < end:
    for _ in range(1000):
        n += 1
print(n)
"""


def cpu_speed(seconds: float = 0.5, processes: int | None = None) -> float:
    """Millions of loop iterations per second over ``processes`` (default: the usable cores) running at once."""
    procs = [subprocess.Popen([sys.executable, "-c", _LOOP, str(seconds)], stdout=subprocess.PIPE, text=True) for _ in range(processes or usable_cores())]
    counts = [int(p.communicate()[0]) for p in procs]
    return sum(counts) / seconds / 1e6
