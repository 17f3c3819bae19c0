"""The conformance-suite contract services (upstream: restatedev/e2e, sdk-tests contracts) for ``restate_sync``.

``CONTRACT_SERVICES`` maps each contract service name to its class; all of them are bound when
``SERVICES`` is unset. ``SCENARIO_LOCAL_SERVICES`` (§4: ``BlockingProxy``, ``Blocker``) are never
bound by default; see :mod:`services.scenario_local`.
"""

from __future__ import annotations

from collections.abc import Iterable

from .awakeable_holder import AwakeableHolder
from .block_and_wait_workflow import BlockAndWaitWorkflow
from .cancel_test import CancelTestBlockingService, CancelTestRunner
from .command_interpreter import VirtualObjectCommandInterpreter
from .counter import Counter
from .failing import Failing
from .kill_test import KillTestRunner, KillTestSingleton
from .list_object import ListObject
from .map_object import MapObject
from .non_deterministic import NonDeterministic
from .object_interpreter import (
    ObjectInterpreterL0,
    ObjectInterpreterL1,
    ObjectInterpreterL2,
    ServiceInterpreterHelper,
)
from .proxy import Proxy
from .scenario_local import SERVICES as SCENARIO_LOCAL_SERVICES
from .test_utils import TestUtilsService


def _by_name(*classes: type) -> dict[str, type]:
    return {cls.__restate_service__.name: cls for cls in classes}  # type: ignore[attr-defined]


CONTRACT_SERVICES: dict[str, type] = _by_name(
    AwakeableHolder,
    BlockAndWaitWorkflow,
    CancelTestRunner,
    CancelTestBlockingService,
    Counter,
    Failing,
    KillTestRunner,
    KillTestSingleton,
    ListObject,
    MapObject,
    NonDeterministic,
    Proxy,
    TestUtilsService,
    VirtualObjectCommandInterpreter,
    ObjectInterpreterL0,
    ObjectInterpreterL1,
    ObjectInterpreterL2,
    ServiceInterpreterHelper,
)


class UnknownServiceError(KeyError):
    """``SERVICES`` named a service this package does not implement."""

    def __init__(self, unknown: list[str]) -> None:
        super().__init__(", ".join(unknown))
        self.unknown = unknown

    def __str__(self) -> str:
        return (
            f"unknown service(s) in SERVICES: {', '.join(self.unknown)}; known contract services: "
            f"{', '.join(sorted(CONTRACT_SERVICES))}; scenario-local (bound only when named): "
            f"{', '.join(sorted(SCENARIO_LOCAL_SERVICES))}"
        )


def select_services(names: Iterable[str] | None = None) -> list[type]:
    """The classes to bind: every contract service when ``names`` is None, else exactly ``names``
    (contract or scenario-local). Raises :class:`UnknownServiceError` for an unknown name."""
    if names is None:
        return list(CONTRACT_SERVICES.values())
    wanted = list(dict.fromkeys(n.strip() for n in names if n.strip()))
    known = {**CONTRACT_SERVICES, **SCENARIO_LOCAL_SERVICES}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise UnknownServiceError(unknown)
    return [known[n] for n in wanted]


__all__ = [
    "CONTRACT_SERVICES",
    "SCENARIO_LOCAL_SERVICES",
    "AwakeableHolder",
    "BlockAndWaitWorkflow",
    "CancelTestBlockingService",
    "CancelTestRunner",
    "Counter",
    "Failing",
    "KillTestRunner",
    "KillTestSingleton",
    "ListObject",
    "MapObject",
    "NonDeterministic",
    "ObjectInterpreterL0",
    "ObjectInterpreterL1",
    "ObjectInterpreterL2",
    "Proxy",
    "ServiceInterpreterHelper",
    "TestUtilsService",
    "UnknownServiceError",
    "VirtualObjectCommandInterpreter",
    "select_services",
]
