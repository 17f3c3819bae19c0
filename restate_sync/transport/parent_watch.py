"""A forked worker must not outlive its supervisor: it gets a signal when the parent dies.

``restate-sync serve --workers N`` pre-forks N workers that share one listening socket. If the
supervisor is killed (``kill -9``, an OOM kill), nobody would stop the workers: they would keep
serving, reparented to init. :func:`die_with_parent` arranges for the calling (forked) process
to receive ``SIGTERM`` — its usual graceful stop — as soon as its parent is gone:

* on Linux with ``prctl(PR_SET_PDEATHSIG)`` (through ctypes): the kernel sends the signal when the
  thread that forked this process exits, which for the supervisor is its main thread, i.e. the
  process;
* elsewhere, or if prctl fails, with a greenlet that checks ``os.getppid()`` every
  :data:`POLL_INTERVAL` seconds (the parent pid changes once the process is reparented).

Either way the parent may already have died between the fork and the call, so that is checked
once right after arranging it.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys

__all__ = ["POLL_INTERVAL", "die_with_parent"]

logger = logging.getLogger("restate_sync.transport")

POLL_INTERVAL = 0.5
"""Seconds between parent checks where the kernel cannot signal a parent's death."""

_PR_SET_PDEATHSIG = 1


def _prctl_pdeathsig(sig: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _poll_parent(parent_pid: int, sig: int) -> None:
    import gevent

    def watch() -> None:
        while os.getppid() == parent_pid:
            gevent.sleep(POLL_INTERVAL)
        logger.warning("supervisor pid %d is gone; worker pid %d stops", parent_pid, os.getpid())
        os.kill(os.getpid(), sig)

    gevent.spawn(watch)


def die_with_parent(parent_pid: int, sig: int = signal.SIGTERM, *, use_prctl: bool | None = None) -> str:
    """Make this process receive ``sig`` once its parent ``parent_pid`` dies; returns how.

    ``"prctl"`` (Linux) or ``"poll"`` (a gevent greenlet; needs the hub to run). ``use_prctl``
    forces one way (tests); by default prctl is used on Linux.
    """
    if use_prctl is None:
        use_prctl = sys.platform.startswith("linux")
    how = "prctl" if use_prctl and _prctl_pdeathsig(int(sig)) else "poll"
    if how == "poll":
        _poll_parent(parent_pid, int(sig))
    if os.getppid() != parent_pid:  # the parent died before we were watching
        os.kill(os.getpid(), sig)
    return how
