"""A workflow's durable promises (:class:`Promises`), the operations of every workflow handler."""

from __future__ import annotations

import builtins
from typing import Any, Protocol, TypeVar, overload

from ..futures import DurableFuture, HandleFuture, void_to_none
from ..protocol.vm import Failure
from ..serde import Serde
from ..values import ANY
from .base import ContextBase
from .codec import decoder, encode, value_serde

__all__ = ["Promises"]

T = TypeVar("T")


class Promises(ContextBase, Protocol):
    """Durable promises: awaiting, peeking, resolving and rejecting them."""

    __slots__ = ()

    @overload
    def promise(self, name: str) -> Any: ...
    @overload
    def promise(self, name: str, *, type: builtins.type[T]) -> T: ...
    @overload
    def promise(self, name: str, serde: Serde[T]) -> T: ...
    @overload
    def promise(self, name: str, *, type: object) -> Any: ...
    def promise(self, name: str, serde: Serde[Any] | None = None, *, type: Any = None) -> Any:
        """Block until the durable promise ``name`` is resolved; return its value (decoded to ``type``)."""
        return self._promise_async(name, serde, type).result()

    @overload
    def promise_async(self, name: str) -> DurableFuture[Any]: ...
    @overload
    def promise_async(self, name: str, *, type: builtins.type[T]) -> DurableFuture[T]: ...
    @overload
    def promise_async(self, name: str, serde: Serde[T]) -> DurableFuture[T]: ...
    @overload
    def promise_async(self, name: str, *, type: object) -> DurableFuture[Any]: ...
    def promise_async(
        self, name: str, serde: Serde[Any] | None = None, *, type: Any = None
    ) -> DurableFuture[Any]:
        """The future of the durable promise ``name``."""
        return self._promise_async(name, serde, type)

    def _promise_async(self, name: str, serde: Serde[Any] | None, type: Any) -> DurableFuture[Any]:
        vm = self._driver.usable_vm()
        decode = decoder(
            ANY if serde is None and type is None else value_serde(serde, type, f"ctx.promise({name!r})"),
            "promise",
            name,
        )
        return HandleFuture(self._driver, vm.sys_get_promise(name), decode)

    @overload
    def peek_promise(self, name: str) -> Any: ...
    @overload
    def peek_promise(self, name: str, *, type: builtins.type[T]) -> T | None: ...
    @overload
    def peek_promise(self, name: str, serde: Serde[T]) -> T | None: ...
    @overload
    def peek_promise(self, name: str, *, type: object) -> Any: ...
    def peek_promise(self, name: str, serde: Serde[Any] | None = None, *, type: Any = None) -> Any:
        """The promise's value if it is resolved, else ``None``."""
        vm = self._driver.usable_vm()
        decode = decoder(
            ANY
            if serde is None and type is None
            else value_serde(serde, type, f"ctx.peek_promise({name!r})"),
            "promise",
            name,
        )
        return HandleFuture(self._driver, vm.sys_peek_promise(name), decode).result()

    def resolve_promise(
        self, name: str, payload: Any, serde: Serde[Any] | None = None, *, type: Any = None
    ) -> None:
        """Resolve the durable promise ``name``; raises ``TerminalError`` if already completed."""
        vm = self._driver.usable_vm()
        what = f"ctx.resolve_promise({name!r}): the payload"
        data = encode(
            ANY if serde is None and type is None else value_serde(serde, type, what), payload, what
        )
        HandleFuture(self._driver, vm.sys_complete_promise(name, data), void_to_none).result()

    def reject_promise(self, name: str, message: str, code: int = 500) -> None:
        """Reject the durable promise ``name``."""
        vm = self._driver.usable_vm()
        HandleFuture(
            self._driver, vm.sys_complete_promise(name, Failure(code, message)), void_to_none
        ).result()
