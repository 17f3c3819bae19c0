"""Typed handlers: inputs and outputs from annotations, JSON Schemas in the discovery manifest.

The input is decoded into the annotated type (a dataclass, a pydantic model, ...) and the return
value encoded from it; Restate shows both JSON Schemas (``restate services describe``, the admin
API, the generated OpenAPI). A body that does not fit is rejected with a 400 naming the field.

    pip install 'restate-sync[pydantic]'
    restate-sync serve examples/typed_handlers.py:endpoint --bind 127.0.0.1:9080
    curl localhost:8080/TypedGreeter/greet -H 'content-type: application/json' \\
        -d '{"name": "World", "greeting": "Hi"}'
    # → {"message":"Hi, World!","length":10}
    curl localhost:8080/TypedGreeter/greet -H 'content-type: application/json' -d '{"name": 5}'
    # → 400 cannot decode the input of TypedGreeter/greet: name: expected str, got int 5
    curl localhost:8080/OrderDesk/alice/place -H 'content-type: application/json' \\
        -d '{"order_id": "o-1", "items": [{"sku": "tea", "quantity": 2, "unit_price": 3.5}]}'
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pydantic

import restate_sync as restate

# ---------------------------------------------------------------------------- dataclasses


@dataclass
class GreetingRequest:
    """Who to greet, and how."""

    name: str
    greeting: str | None = None


@dataclass
class GreetingResponse:
    message: str
    length: int


@dataclass
class Batch:
    names: list[str]
    tags: dict[str, str] = field(default_factory=dict)


class TypedGreeter(restate.Service):
    """Greets people, with typed requests and responses."""

    @restate.handler
    def greet(ctx: restate.Context, request: GreetingRequest) -> GreetingResponse:
        """Greet one person."""
        message = f"{request.greeting or 'Hello'}, {request.name}!"
        return GreetingResponse(message=message, length=len(message))

    @restate.handler
    def greet_all(ctx: restate.Context, batch: Batch) -> list[GreetingResponse]:
        """Greet several people through durable calls; the calls are typed too."""
        futures = [ctx.service_call(TypedGreeter, "greet", GreetingRequest(name)) for name in batch.names]
        # each result is a GreetingResponse, decoded with greet's output type
        return [future.result() for future in futures]

    @restate.handler
    def maybe(ctx: restate.Context, name: str | None) -> str:
        """An optional input: callable with no body at all."""
        return f"Hello, {name or 'stranger'}!"

    @restate.handler
    def shout(ctx: restate.Context, data: bytes) -> bytes:
        """Raw bytes in and out (application/octet-stream)."""
        return data.upper()

    @restate.handler
    def ping(ctx: restate.Context) -> None:
        """No input, empty output."""


# ---------------------------------------------------------------------------- pydantic


class LineItem(pydantic.BaseModel):
    sku: str = pydantic.Field(min_length=1)
    quantity: int = pydantic.Field(ge=1)
    unit_price: float = pydantic.Field(ge=0)


class Order(pydantic.BaseModel):
    """An order as clients send it."""

    order_id: str
    items: list[LineItem]
    coupon: str | None = None


class Receipt(pydantic.BaseModel):
    order_id: str
    total: float
    item_count: int


class OrderDesk(restate.VirtualObject):
    """Places orders for one customer (the key) and remembers the last receipt."""

    @restate.handler
    def place(ctx: restate.ObjectContext, order: Order) -> Receipt:
        total = sum(item.quantity * item.unit_price for item in order.items)
        if order.coupon == "HALF":
            total /= 2
        # a run result, a state value: any supported type, decoded back into it on replay
        receipt = ctx.run_sync(
            "charge",
            lambda: Receipt(order_id=order.order_id, total=total, item_count=len(order.items)),
            type=Receipt,
        )
        ctx.set("last", receipt)
        return receipt

    @restate.shared
    def last(ctx: restate.ObjectSharedContext) -> Receipt | None:
        return ctx.get("last", type=Receipt)


endpoint = restate.endpoint(TypedGreeter, OrderDesk)
