"""Services for the API-trust end-to-end tests (typed values, misuse, retries, no-input handlers)."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import restate_sync as restate

from .api_services import Holder

_lock = threading.Lock()
COUNTS: dict[str, int] = defaultdict(int)  # side effects and handler entries, by test key
TIMES: dict[str, list[float]] = defaultdict(list)  # monotonic timestamps the handlers record


def bump(name: str) -> int:
    with _lock:
        COUNTS[name] += 1
        return COUNTS[name]


@dataclass
class Account:
    owner: str
    balance: int
    tags: list[str]


class Opaque:
    """A plain class JSON cannot encode."""


class Accounts(restate.VirtualObject, inactivity_timeout=0):
    """inactivity_timeout=0: every await that has to wait suspends the invocation for real."""

    @restate.handler
    def open(ctx: restate.ObjectContext, owner: str) -> dict[str, Any]:
        bump(f"{ctx.key}:entries")

        def create() -> Account:  # the return annotation types the step
            bump(f"{ctx.key}:create")
            return Account(owner, 100, ["new"])

        account = ctx.run_sync("create", create)
        lambda_account = ctx.run_sync(
            "create-lambda",
            lambda: Account(owner, 5, []) if bump(f"{ctx.key}:lambda") else None,
            type=Account,
        )
        ctx.set("account", account)
        ctx.sleep(0.2).result()  # the invocation suspends here and resumes by replaying
        stored = ctx.get("account", type=Account)
        untyped = ctx.get("account")
        return {
            "run_is_dataclass": isinstance(account, Account) and isinstance(lambda_account, Account),
            "stored_is_dataclass": isinstance(stored, Account),
            "stored": [stored.owner, stored.balance, stored.tags] if stored else None,
            "untyped": untyped,
        }

    @restate.shared
    def account(ctx: restate.ObjectSharedContext) -> Account | None:
        return ctx.get("account", type=Account)

    @restate.handler
    def unencodable(ctx: restate.ObjectContext) -> str:
        return str(ctx.run_sync("charge", lambda: Opaque() if bump(f"{ctx.key}:charge") else None))


class Values(restate.Service):
    @restate.handler
    def make_account(ctx: restate.Context, owner: str) -> Account:
        return Account(owner, 1, ["made"])

    @restate.handler
    def call_typed(ctx: restate.Context, owner: str) -> dict[str, Any]:
        by_reference = ctx.service_call(Values.make_account, owner).result()
        by_name = ctx.service_call("Values", "make_account", owner).result()
        return {"reference_is_dataclass": isinstance(by_reference, Account), "by_name": by_name}

    @restate.handler
    def typed_awakeable(ctx: restate.Context, key: str) -> dict[str, Any]:
        awakeable_id, future = ctx.awakeable(type=Account)
        ctx.object_call(Holder.hold, key, awakeable_id).result()
        account = future.result()
        return {"is_dataclass": isinstance(account, Account), "owner": account.owner}

    @restate.handler
    def typed_signal(ctx: restate.Context) -> dict[str, Any]:
        account = ctx.signal("account", type=Account).result()
        return {"is_dataclass": isinstance(account, Account), "owner": account.owner}

    @restate.handler
    def send_signal(ctx: restate.Context, invocation_id: str) -> None:
        ctx.resolve_signal(invocation_id, "account", Account("sig", 2, []))


class TypedFlow(restate.Workflow):
    @restate.main
    def run(ctx: restate.WorkflowContext) -> dict[str, Any]:
        account = ctx.promise("account", type=Account)
        return {"is_dataclass": isinstance(account, Account), "owner": account.owner}

    @restate.handler
    def give(ctx: restate.WorkflowSharedContext, account: Account) -> None:
        ctx.resolve_promise("account", account)


class Misuse(restate.VirtualObject):
    """Each handler misuses the API once; the invocation must end on its first attempt.

    ``<key>:misused`` counts the misuses: a retry would misuse again (a suspension and replay, as
    with ``--always-suspend``, does not: the failed run step is replayed from the journal).
    """

    @restate.shared
    def set_in_shared(ctx: restate.ObjectSharedContext) -> None:
        bump(f"{ctx.key}:misused")
        ctx.set("x", 1)  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue]

    @restate.handler
    def wrong_accessor(ctx: restate.ObjectContext) -> None:
        bump(f"{ctx.key}:misused")
        restate.current_workflow_context()

    @restate.handler
    def ctx_in_run(ctx: restate.ObjectContext) -> None:
        ctx.run_sync("misuse", lambda: (bump(f"{ctx.key}:misused"), ctx.sleep(1)))

    @restate.handler
    def promise_outside_workflow(ctx: restate.ObjectContext) -> None:
        bump(f"{ctx.key}:misused")
        ctx.promise("approval")  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue]

    @restate.handler
    def negative_sleep(ctx: restate.ObjectContext) -> None:
        bump(f"{ctx.key}:misused")
        ctx.sleep(-1).result()

    @restate.handler
    def unawaited(ctx: restate.ObjectContext) -> str:
        ctx.run("never", lambda: bump(f"{ctx.key}:never"))
        ctx.sleep(30, name="forgotten")
        ctx.sleep(60)
        ctx.run_sync("awaited", lambda: None)
        ctx.sleep(0.01).result()
        return "returned"


class Retries(restate.VirtualObject):
    @restate.handler
    def handler_retry_after(ctx: restate.ObjectContext, seconds: float) -> int:
        TIMES[f"{ctx.key}:handler"].append(time.monotonic())
        if len(TIMES[f"{ctx.key}:handler"]) == 1:
            raise restate.RetryableError("the bank is busy", retry_after=seconds)
        return len(TIMES[f"{ctx.key}:handler"])

    @restate.handler
    def run_retry_after(ctx: restate.ObjectContext, seconds: float) -> int:
        def flaky() -> int:
            TIMES[f"{ctx.key}:run"].append(time.monotonic())
            if len(TIMES[f"{ctx.key}:run"]) == 1:
                raise restate.RetryableError("rate limited", retry_after=seconds)
            return len(TIMES[f"{ctx.key}:run"])

        policy = restate.RunRetryPolicy(initial_interval=0.01, max_attempts=3, exponentiation_factor=1.0)
        return ctx.run_sync("flaky", flaky, retry_policy=policy)


ALL = (Accounts, Values, TypedFlow, Misuse, Retries)
