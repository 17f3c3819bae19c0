"""The state operations of objects and workflows: the key and reading (:class:`StateReads`), and
writing (:class:`StateWrites`)."""

from __future__ import annotations

import builtins
from typing import Any, Protocol, TypeVar, overload

from ..futures import DurableFuture, HandleFuture, identity
from ..serde import Serde
from ..values import ANY
from .base import ContextBase
from .codec import decoder, encode, encode_error, value_serde

__all__ = ["StateReads", "StateWrites"]

T = TypeVar("T")


class StateReads(ContextBase, Protocol):
    """The key and read-only state (every object and workflow handler)."""

    __slots__ = ()

    @property
    def key(self) -> str:
        """The object's (or workflow's) key."""
        return self._driver.input.key

    @overload
    def get(self, name: str) -> Any: ...
    @overload
    def get(self, name: str, *, type: builtins.type[T]) -> T | None: ...
    @overload
    def get(self, name: str, serde: Serde[T]) -> T | None: ...
    @overload
    def get(self, name: str, *, type: object) -> Any: ...
    def get(self, name: str, serde: Serde[Any] | None = None, *, type: Any = None) -> Any:
        """The value of state entry ``name`` (decoded to ``type``), or ``None`` when absent."""
        return self._get_async(name, serde, type).result()

    @overload
    def get_async(self, name: str) -> DurableFuture[Any]: ...
    @overload
    def get_async(self, name: str, *, type: builtins.type[T]) -> DurableFuture[T | None]: ...
    @overload
    def get_async(self, name: str, serde: Serde[T]) -> DurableFuture[T | None]: ...
    @overload
    def get_async(self, name: str, *, type: object) -> DurableFuture[Any]: ...
    def get_async(
        self, name: str, serde: Serde[Any] | None = None, *, type: Any = None
    ) -> DurableFuture[Any]:
        """The future of state entry ``name`` (``None`` when absent)."""
        return self._get_async(name, serde, type)

    def _get_async(self, name: str, serde: Serde[Any] | None, type: Any) -> DurableFuture[Any]:
        vm = self._driver.usable_vm()
        decode = decoder(
            ANY if serde is None and type is None else value_serde(serde, type, f"ctx.get({name!r})"),
            "state entry",
            name,
        )
        return HandleFuture(self._driver, vm.sys_get_state(name), decode)

    def state_keys(self) -> list[str]:
        """Names of all state entries."""
        return self.state_keys_async().result()

    def state_keys_async(self) -> DurableFuture[list[str]]:
        vm = self._driver.usable_vm()
        return HandleFuture(self._driver, vm.sys_get_state_keys(), identity)


class StateWrites(ContextBase, Protocol):
    """Writing state (exclusive object handlers and a workflow's ``@main``)."""

    __slots__ = ()

    def set(self, name: str, value: Any, serde: Serde[Any] | None = None, *, type: Any = None) -> None:
        """Set state entry ``name`` (dataclasses, pydantic and msgspec models, TypedDicts, ... are
        encoded as JSON; ``type=`` / ``serde=`` choose the encoding)."""
        vm = self._driver.usable_vm()
        if serde is None and type is None:
            try:
                data = ANY.serialize(value)
            except Exception as exc:
                raise encode_error(f"ctx.set({name!r})", value, exc) from exc
        else:
            what = f"ctx.set({name!r})"
            data = encode(value_serde(serde, type, what), value, what)
        vm.sys_set_state(name, data)

    def clear(self, name: str) -> None:
        """Delete state entry ``name``."""
        self._driver.usable_vm().sys_clear_state(name)

    def clear_all(self) -> None:
        """Delete every state entry."""
        self._driver.usable_vm().sys_clear_all_state()
