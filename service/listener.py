"""Each BentoML worker accepts on its own SO_REUSEPORT socket, so the kernel spreads new connections over the workers.

Why: ``bentoml serve`` (a circus arbiter) binds ONE listening socket and passes its fd to every worker
(``python -m _bentoml_impl.worker.service ... --fd N``), whose uvicorn accepts on it. Whichever worker's event
loop wakes first accepts every connection waiting in the queue, so keep-alive clients often all land on one
worker (64 of 64 connections in some runs) and the service runs on one core. See docs/workers.md.

What ``install()`` does in a worker, before uvicorn starts serving:

1. read the shared socket's address from fd N (``getsockname``);
2. take it out of service: ``shutdown(SHUT_RDWR)`` on a listening socket makes it stop listening, for every
   process that holds it (the arbiter and all workers). This comes first because Linux refuses a SO_REUSEPORT
   bind while a socket without SO_REUSEPORT listens on the port. A worker that comes later (a sibling, or one
   circus restarts after a crash) finds it already shut down and skips this step;
3. bind a new socket with SO_REUSEADDR + SO_REUSEPORT to the same address, listen with the worker's ``--backlog``;
4. ``dup2`` it onto fd N, so that BentoML's ``socket.socket(fileno=N)`` serves it.

The kernel then hashes each new connection (its addresses and ports) to one worker's socket. A worker that exits
takes its socket, and the connections waiting in its queue, with it; new connections go to the other workers.
While no worker runs (all restarting) connections are refused instead of waiting in the shared queue.

This reaches into BentoML's worker command line (BentoML 1.4.40, pinned in pyproject.toml), the one place in the
project that does. Outside a worker (tests, the Python API, the ``bentoml serve`` main process) it does nothing;
in a worker whose command line or socket is not what it expects it refuses to start rather than silently serving
the shared socket. Linux only (elsewhere SO_REUSEPORT does not balance); ``REUSEPORT=off`` turns it off.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import sys
from collections.abc import Sequence

import bentoml

from service.config import settings

log = logging.getLogger("lstm_service.listener")

BENTOML_VERSION = "1.4.40"  # the version whose worker command line and socket passing this follows
WORKER_MODULE = "_bentoml_impl.worker.service"  # BentoML's worker, run as ``python -m``
DEFAULT_BACKLOG = 2048  # the worker's ``--backlog`` default


class ListenerError(RuntimeError):
    """The worker is not what this module expects: it refuses to start."""


def in_worker() -> bool:
    """Whether this process is a BentoML worker: ``python -m _bentoml_impl.worker.service``."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return getattr(spec, "name", None) == WORKER_MODULE


def install() -> None:
    """Called when ``service.service`` is imported: in a BentoML worker, accept on an own SO_REUSEPORT socket."""
    if not settings.reuseport or not in_worker():
        return
    if log.level == logging.NOTSET:  # BentoML's server logging passes only WARNING and up from loggers not under "bentoml"
        log.setLevel(logging.INFO)
    if not sys.platform.startswith("linux"):
        log.info("SO_REUSEPORT balancing is Linux only: this worker accepts on the shared socket")
        return
    if bentoml.__version__ != BENTOML_VERSION:
        raise ListenerError(
            f"service/listener.py follows BentoML {BENTOML_VERSION}'s worker, this is BentoML {bentoml.__version__}: "
            "check that workers still get the shared socket as --fd N, then update BENTOML_VERSION (or set REUSEPORT=off)"
        )
    address = take_own_socket(sys.argv)
    log.info("worker %s accepts on its own SO_REUSEPORT socket %s", _option(sys.argv, "--worker-id") or os.getpid(), address)


def take_own_socket(argv: Sequence[str]) -> str:
    """Replace the shared listening socket on the worker's ``--fd N`` by an own SO_REUSEPORT socket on the same
    address (the steps in the module docstring); returns that address, ``host:port``."""
    raw_fd = _option(argv, "--fd")
    if raw_fd is None or not raw_fd.isdigit():
        raise _refuse(f"no '--fd N' in the worker's command line {list(argv)!r}")
    fd = int(raw_fd)
    raw_backlog = _option(argv, "--backlog")
    backlog = int(raw_backlog) if raw_backlog is not None and raw_backlog.isdigit() else DEFAULT_BACKLOG
    try:
        shared = socket.socket(fileno=fd)
    except OSError as e:
        raise _refuse(f"--fd {fd} is not an open socket ({e.strerror})") from None
    try:
        address = _listening_address(shared, fd)
        if shared.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            try:
                shared.shutdown(socket.SHUT_RDWR)
            except OSError as e:
                if e.errno != errno.ENOTCONN:  # ENOTCONN: a sibling worker shut it down meanwhile
                    raise
        own = socket.socket(shared.family, socket.SOCK_STREAM)
        try:
            own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if shared.family == socket.AF_INET6:
                own.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, shared.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY))
            try:
                own.bind(address)
            except OSError as e:
                raise _refuse(f"cannot bind a SO_REUSEPORT socket to {_format(address)} ({e.strerror})") from None
            own.listen(backlog)
            own.setblocking(os.get_blocking(fd))
            # Not inheritable: a process this worker starts must not keep the worker's socket in the group.
            os.dup2(own.fileno(), fd, inheritable=False)
        finally:
            own.close()  # fd N now refers to it
    finally:
        shared.detach()  # fd N stays open: BentoML opens it next
    return _format(address)


def _listening_address(shared: socket.socket, fd: int) -> tuple[str, int] | tuple[str, int, int, int]:
    """The address of the shared TCP socket: listening, or already shut down by a sibling worker (bound, no peer)."""
    if shared.family not in (socket.AF_INET, socket.AF_INET6) or shared.type != socket.SOCK_STREAM:
        raise _refuse(f"--fd {fd} is not a TCP socket ({shared.family!r}, {shared.type!r})")
    address = shared.getsockname()
    if address[1] == 0:
        raise _refuse(f"--fd {fd} is a TCP socket bound to no port")
    if not shared.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        try:
            peer = shared.getpeername()
        except OSError:
            peer = None  # not connected: shut down by a sibling worker (or never listened; bind and listen tell)
        if peer is not None:
            raise _refuse(f"--fd {fd} is a connected TCP socket ({_format(address)} to {_format(peer)}), not a listening one")
    return address


def _option(argv: Sequence[str], name: str) -> str | None:
    """The value of ``name V`` or ``name=V`` in ``argv`` (the last one, as click takes it)."""
    value = None
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(name + "="):
            value = arg[len(name) + 1 :]
    return value


def _format(address: tuple[str, int] | tuple[str, int, int, int]) -> str:
    return f"[{address[0]}]:{address[1]}" if ":" in address[0] else f"{address[0]}:{address[1]}"


def _refuse(reason: str) -> ListenerError:
    return ListenerError(
        f"service/listener.py cannot give this worker its own SO_REUSEPORT socket: {reason}. It follows BentoML {BENTOML_VERSION}'s "
        f"worker (python -m {WORKER_MODULE} ... --fd N, a listening TCP socket); this is BentoML {bentoml.__version__}. "
        "Set REUSEPORT=off to serve on BentoML's shared socket."
    )
