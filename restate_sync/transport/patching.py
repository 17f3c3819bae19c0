"""The monkey-patching policy: patching is the application's decision; the SDK says when it is missing.

Handlers are plain ``def`` functions on gevent greenlets. Blocking I/O in one of them (a
database driver, ``requests``, ``time.sleep``) yields to the other invocations only if the
standard library was monkey-patched (``gevent.monkey.patch_all()``, first thing in the process).
Without it, every invocation of the process waits while one handler blocks.

``restate-sync serve`` patches (unless ``--no-patch``), ``gunicorn -k gevent`` and the
restate_sync gunicorn worker patch; a program of one's own does it itself. :func:`warn_if_unpatched`
is called by ``endpoint.start``/``serve`` and by ``endpoint.app`` on its first request, and logs
one warning per process when ``socket`` is not patched.
"""

from __future__ import annotations

import logging

from gevent import monkey

__all__ = ["socket_patched", "warn_if_unpatched"]

logger = logging.getLogger("restate_sync.transport")

_warned = False


def socket_patched() -> bool:
    return bool(monkey.is_module_patched("socket"))


def warn_if_unpatched(where: str) -> bool:
    """Log (once per process) that ``socket`` is not monkey-patched; True if it is not."""
    global _warned
    if socket_patched():
        return False
    if not _warned:
        _warned = True
        logger.warning(
            "%s: the socket module is not monkey-patched by gevent, so blocking I/O in a handler or a "
            "run block (network calls, time.sleep, ...) stalls every invocation in this process; call "
            "gevent.monkey.patch_all() first thing in the program (restate-sync serve and gunicorn's "
            "gevent workers do)",
            where,
        )
    return True
