"""CPU time and resident memory of a process and all its descendants, read now.

The one walk over a process tree for the load tests and the benchmark (a server's
CPU time, the soak's memory). It needs psutil only, so that ``service/metrics.py``
(``resource_metrics_text``) could use the same function once it lives where the
service's Bento includes it.
"""

from __future__ import annotations

from typing import NamedTuple

import psutil


class TreeUsage(NamedTuple):
    cpu_seconds: float  # user + system, summed
    rss_bytes: int  # resident set, summed


def tree_usage(root: int | psutil.Process) -> TreeUsage:
    """``root`` (a pid or a process) and its live descendants; one that exits meanwhile is left out.

    Raises ``psutil.NoSuchProcess`` when ``root`` itself is gone."""
    root = root if isinstance(root, psutil.Process) else psutil.Process(root)
    cpu, rss = 0.0, 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            with proc.oneshot():
                times = proc.cpu_times()
                cpu, rss = cpu + times.user + times.system, rss + proc.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return TreeUsage(cpu, rss)
