"""Which model goes first when both are busy on a CPU: the niceness of a worker's threads (Linux).

Each worker runs three busy threads on the cores: the event loop (HTTP, JSON,
validation of both APIs), the sentiment model's thread and the translator's
thread. A thread's niceness sets its weight in the kernel's scheduler only
while threads compete for a core, so a setting here changes nothing for one
model alone and decides the split when both are busy.

``TRANSLATION_PRIORITY`` = p:

- p > 0: the event loop and the sentiment thread run at niceness +p (weight
  1024 / 1.25^p against the translator's 1024): under mixed load the translator
  keeps most of the CPU, and a sentiment request still runs within a few
  scheduler slices, because the HTTP work per request is short.
- p < 0: the translator's thread runs at niceness +|p|: HTTP work and the
  sentiment model go first.

The model threads also carry their names in the OS (``lstm-sentiment``,
``lstm-translate``: ``top -H``, ``ps -L -o tid,ni,comm``), where an operator
sees which thread has which niceness.

Only raising niceness is used, which needs no privilege (lowering it needs
CAP_SYS_NICE), so it works in an unprivileged container.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading

PR_SET_NAME = 15  # prctl(2): the calling thread's name, at most 15 bytes


def name_this_thread(name: str) -> None:
    """The calling thread's name in the OS (``/proc/<pid>/task/<tid>/comm``); Linux only, a no-op elsewhere."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)


def lower_this_thread(by: int) -> None:
    """Add ``by`` (>= 0) to the niceness of the calling thread (on Linux a thread's own, not its process's)."""
    if by <= 0:
        return
    tid = threading.get_native_id()
    os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + by)


def http_and_sentiment_nice(translation_priority: int) -> int:
    """Niceness added to the event loop and the sentiment thread."""
    return max(translation_priority, 0)


def translation_nice(translation_priority: int) -> int:
    """Niceness added to the translator's thread."""
    return max(-translation_priority, 0)
