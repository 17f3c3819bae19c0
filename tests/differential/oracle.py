"""Restate's shared core, loaded as a test-only oracle.

The official Python SDK's wheel (``restate-sdk``, pinned in the ``dev`` extra) ships the Rust
shared core as the extension module ``restate._internal``. We load that shared object directly
from the installed distribution under a private module name, without importing the official
SDK's ``restate`` package (whose ``__init__`` would pull in the whole SDK). The module's init
function is ``PyInit__internal``, so the last component of the name we give it must be
``_internal``.

:func:`load_core` returns the module, or ``None`` plus the reason it is not available; the
differential tests skip with that reason.
"""

from __future__ import annotations

import importlib.machinery
import importlib.metadata
import importlib.util
import sys
from types import ModuleType

DISTRIBUTION = "restate-sdk"
MODULE_NAME = "_restate_sync_oracle._internal"  # private name; PyInit__internal needs "_internal"

_cache: tuple[ModuleType | None, str] | None = None


def _load() -> tuple[ModuleType | None, str]:
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return (
            None,
            f"the {DISTRIBUTION} wheel (Restate's shared core) is not installed; pip install -e '.[dev]'",
        )
    candidates = [
        f for f in dist.files or () if f.parts[:1] == ("restate",) and f.name.startswith("_internal.")
    ]
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    candidates = [f for f in candidates if f.name.endswith(suffixes)]
    if not candidates:
        return None, f"{DISTRIBUTION} {dist.version} has no restate/_internal extension for this platform"
    path = str(dist.locate_file(candidates[0]))
    if MODULE_NAME in sys.modules:
        return sys.modules[MODULE_NAME], ""
    loader = importlib.machinery.ExtensionFileLoader(MODULE_NAME, path)
    spec = importlib.util.spec_from_file_location(MODULE_NAME, path, loader=loader)
    if spec is None:
        return None, f"cannot build an import spec for {path}"
    try:
        module = importlib.util.module_from_spec(spec)
        loader.exec_module(module)
    except ImportError as exc:
        return None, f"cannot load the shared core from {DISTRIBUTION} {dist.version}: {exc}"
    sys.modules[MODULE_NAME] = module
    return module, ""


def load_core() -> tuple[ModuleType | None, str]:
    """The shared-core module (``PyVM``, ...) and ``""``, or ``None`` and why it is missing."""
    global _cache
    if _cache is None:
        _cache = _load()
    return _cache


def core_versions() -> tuple[int, int]:
    """The protocol versions the loaded core accepts (probed through its content-type check)."""
    core, _ = load_core()
    assert core is not None
    accepted = []
    for version in range(1, 16):
        try:
            core.PyVM([("content-type", f"application/vnd.restate.invocation.v{version}")])
        except Exception:
            continue
        accepted.append(version)
    return min(accepted), max(accepted)
