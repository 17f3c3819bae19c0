"""The gunicorn worker class: ``gunicorn -k restate_sync.gunicorn.Worker module:endpoint``.

Serves the endpoint over h2c (bidirectional streaming) and HTTP/1.1 on gunicorn's listeners, under
gunicorn's process management; see :mod:`restate_sync.transport.gunicorn_worker`. Needs gunicorn
(``pip install gunicorn``); importing this module imports it.
"""

from __future__ import annotations

from .transport.gunicorn_worker import NO_PATCH_ENV, Worker

__all__ = ["NO_PATCH_ENV", "Worker"]
