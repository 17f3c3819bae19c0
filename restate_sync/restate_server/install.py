"""Find the pinned restate-server binary, installing it from npm into a cache if needed.

The binary is looked up in this order (:func:`find_server_binary`):

1. ``RESTATE_SERVER_BIN`` — an explicit path, which must exist and be executable;
2. ``restate-server`` on ``PATH``, but only when ``restate-server --version`` reports
   :data:`RESTATE_SERVER_VERSION`;
3. the cache directory ``${RESTATE_SYNC_CACHE:-${XDG_CACHE_HOME:-~/.cache}/restate_sync}/
   restate-server-<version>/``, which is filled on demand with
   ``npm install @restatedev/restate-server@<version>`` (atomically: npm installs into a temporary
   directory next to it, which is then renamed into place under a file lock).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import ServerBinaryNotFound
from .processes import tail_lines, wait_until

__all__ = [
    "NPM_PACKAGE",
    "RESTATE_SERVER_VERSION",
    "cache_dir",
    "find_server_binary",
    "install_server",
]

RESTATE_SERVER_VERSION = "1.7.12"
"""The one restate-server version this project pins."""

NPM_PACKAGE = "@restatedev/restate-server"

logger = logging.getLogger("restate_sync.restate_server")

_INSTALL_LOCK_TIMEOUT = 900.0
_NPM_TIMEOUT = 600.0
_NPM_OUTPUT_LINES = 30


def cache_dir() -> Path:
    """The cache root: ``$RESTATE_SYNC_CACHE``, else ``${XDG_CACHE_HOME:-~/.cache}/restate_sync``."""
    explicit = os.environ.get("RESTATE_SYNC_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "restate_sync"


def _npm_platform() -> str:
    """The ``<os>-<arch>`` suffix of the npm platform package, as node would name it."""
    system = sys.platform
    if system.startswith("linux"):
        os_name = "linux"
    elif system == "darwin":
        os_name = "darwin"
    else:
        raise ServerBinaryNotFound(
            f"restate-server is published on npm for linux and darwin only, not for {system!r}"
        )
    machine = platform.machine().lower()
    arch = {
        "x86_64": "x64",
        "amd64": "x64",
        "x64": "x64",
        "aarch64": "arm64",
        "arm64": "arm64",
        "armv8": "arm64",
        "armv8l": "arm64",
    }.get(machine)
    if arch is None:
        raise ServerBinaryNotFound(
            f"restate-server is published on npm for x64 and arm64 only, not {machine!r}"
        )
    return f"{os_name}-{arch}"


def _binary_in(prefix: Path) -> Path:
    """Where ``npm install --prefix <prefix>`` puts the native binary for this platform."""
    return (
        prefix
        / "node_modules"
        / "@restatedev"
        / f"restate-server-{_npm_platform()}"
        / "bin"
        / "restate-server"
    )


def _is_executable_file(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


_version_cache: dict[tuple[str, float, int], str | None] = {}
_version_cache_lock = threading.Lock()


def _binary_version(path: str | Path) -> str | None:
    """The version ``<path> --version`` reports (``restate-server 1.7.12`` → ``1.7.12``), or None."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    cache_key = (str(path), st.st_mtime, st.st_size)
    with _version_cache_lock:
        if cache_key in _version_cache:
            return _version_cache[cache_key]
    version: str | None = None
    try:
        out = subprocess.run(
            [str(path), "--version"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        words = out.stdout.strip().split()
        if out.returncode == 0 and words:
            version = words[-1].lstrip("v")
    except (OSError, subprocess.SubprocessError) as exc:
        logger.debug("could not run %s --version: %s", path, exc)
    with _version_cache_lock:
        _version_cache[cache_key] = version
    return version


def find_server_binary(install: bool = True) -> str:
    """Return the path of a restate-server binary of the pinned version.

    Looks at ``RESTATE_SERVER_BIN``, then ``restate-server`` on ``PATH`` (only if it reports
    :data:`RESTATE_SERVER_VERSION`), then the cache directory; if none is there and ``install`` is
    true, installs it into the cache with npm (see :func:`install_server`).

    Raises :class:`ServerBinaryNotFound` with an explanation when nothing usable is found.
    """
    explicit = os.environ.get("RESTATE_SERVER_BIN")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.exists():
            raise ServerBinaryNotFound(f"RESTATE_SERVER_BIN={explicit!r} does not exist")
        if not _is_executable_file(path):
            raise ServerBinaryNotFound(f"RESTATE_SERVER_BIN={explicit!r} is not an executable file")
        return str(path.resolve())

    on_path = shutil.which("restate-server")
    if on_path:
        version = _binary_version(on_path)
        if version == RESTATE_SERVER_VERSION:
            return on_path
        logger.info(
            "skipping restate-server on PATH at %s: it reports version %s, the pin is %s",
            on_path,
            version or "<unknown>",
            RESTATE_SERVER_VERSION,
        )

    cached = _binary_in(cache_dir() / f"restate-server-{RESTATE_SERVER_VERSION}")
    if _is_executable_file(cached):
        return str(cached)
    if not install:
        raise ServerBinaryNotFound(
            f"restate-server {RESTATE_SERVER_VERSION} not found: set RESTATE_SERVER_BIN, put it on PATH, "
            f"or run `python -m restate_sync.restate_server install` (would install into {cached.parents[4]})"
        )
    return install_server()


@contextlib.contextmanager
def _file_lock(path: Path, timeout: float) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on ``path``; yields False where file locks are unavailable.

    Polls a non-blocking lock rather than blocking in ``flock`` so that a gevent hub is not stalled.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        yield False
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        announced = False

        def try_lock() -> str | None:
            nonlocal announced
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return "locked"
            except OSError as exc:
                if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                    # e.g. some network file systems; the atomic rename still protects us
                    return "unsupported"
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
            if not announced:
                logger.info("waiting for another process installing restate-server (lock %s)", path)
                announced = True
            return None

        outcome = wait_until(
            try_lock,
            timeout,
            0.2,
            on_timeout=lambda: ServerBinaryNotFound(
                f"timed out after {timeout:.0f}s waiting for the install lock {path}"
            ),
        )
        if outcome == "unsupported":
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def install_server(version: str = RESTATE_SERVER_VERSION, cache: str | Path | None = None) -> str:
    """Install restate-server ``version`` with npm into the cache (if not there) and return its path.

    npm installs into a temporary directory beside ``restate-server-<version>/``, which is renamed
    into place only once the binary is verified, under an exclusive file lock; an interrupted or
    concurrent install therefore never leaves a broken cache entry behind.
    """
    root = Path(cache).expanduser() if cache is not None else cache_dir()
    final = root / f"restate-server-{version}"
    binary = _binary_in(final)
    if _is_executable_file(binary):
        return str(binary)
    root.mkdir(parents=True, exist_ok=True)
    with _file_lock(root / f".restate-server-{version}.lock", _INSTALL_LOCK_TIMEOUT) as locked:
        if _is_executable_file(binary):  # another process finished while we waited
            return str(binary)
        if locked:  # whoever held the lock before is done: any temporary directory left is stale
            for stale in root.glob(f".restate-server-{version}.tmp-*"):
                shutil.rmtree(stale, ignore_errors=True)
        npm = shutil.which("npm")
        if npm is None:
            raise ServerBinaryNotFound(
                f"restate-server {version} is not installed and npm is not on PATH; install Node.js/npm, "
                "or set RESTATE_SERVER_BIN to a restate-server binary"
            )
        tmp = Path(tempfile.mkdtemp(prefix=f".restate-server-{version}.tmp-", dir=root))
        tmp.chmod(0o755)  # mkdtemp makes it 0700; the cache entry may be shared
        try:
            cmd = [
                npm,
                "install",
                "--no-audit",
                "--no-fund",
                "--no-save",
                "--ignore-scripts",
                "--no-update-notifier",
                "--prefix",
                str(tmp),
                f"{NPM_PACKAGE}@{version}",
            ]
            logger.info("installing %s@%s with npm into %s", NPM_PACKAGE, version, final)
            started = time.monotonic()
            try:
                proc = subprocess.run(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=_NPM_TIMEOUT,
                    check=False,
                    cwd=tmp,
                )
            except subprocess.TimeoutExpired as exc:
                raise ServerBinaryNotFound(f"`{' '.join(cmd)}` timed out after {_NPM_TIMEOUT:.0f}s") from exc
            if proc.returncode != 0:
                raise ServerBinaryNotFound(
                    f"`{' '.join(cmd)}` failed with exit code {proc.returncode}:\n"
                    f"{tail_lines(proc.stderr or proc.stdout, _NPM_OUTPUT_LINES)}"
                )
            tmp_binary = _binary_in(tmp)
            if not _is_executable_file(tmp_binary):
                raise ServerBinaryNotFound(
                    f"npm installed {NPM_PACKAGE}@{version} but {tmp_binary.relative_to(tmp)} is missing "
                    f"(no binary published for {_npm_platform()}?); npm said:\n{tail_lines(proc.stderr, _NPM_OUTPUT_LINES)}"
                )
            got = _binary_version(tmp_binary)
            if got != version:
                raise ServerBinaryNotFound(
                    f"the installed restate-server reports version {got!r}, expected {version}"
                )
            if final.exists():  # a broken leftover (no binary in it): move it out of the way first
                trash = Path(tempfile.mkdtemp(prefix=f".restate-server-{version}.tmp-old-", dir=root))
                os.rename(final, trash / "old")
                shutil.rmtree(trash, ignore_errors=True)
            try:
                os.rename(tmp, final)
            except OSError:
                if _is_executable_file(binary):  # lost a race against an installer without the lock
                    return str(binary)
                raise
            logger.info(
                "installed restate-server %s in %.1fs: %s", version, time.monotonic() - started, binary
            )
            return str(binary)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
