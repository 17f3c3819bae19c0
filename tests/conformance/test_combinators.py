"""Combinators over awakeables, timers, runs and signals (upstream: restatedev/e2e, sdk-tests)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from .harness import INTERPRETER, ConformanceEnv, eventually, expect_http_error, new_key


def interpret(*commands: dict) -> dict:
    return {"commands": list(commands)}


def create_awakeable(key: str) -> dict:
    return {"type": "createAwakeable", "awakeableKey": key}


def create_signal(name: str) -> dict:
    return {"type": "createSignal", "signalName": name}


def run_throw(reason: str) -> dict:
    return {"type": "runThrowTerminalException", "reason": reason}


def run_returns(value: str) -> dict:
    return {"type": "runReturns", "value": value}


def sleep(millis: int) -> dict:
    return {"type": "sleep", "timeoutMillis": millis}


def combinator(kind: str, *awaitables: dict) -> dict:
    return {"type": kind, "commands": list(awaitables)}


def resolve_signal(conf: ConformanceEnv, invocation_id: str, name: str, value: str) -> None:
    conf.ingress.call(
        "TestUtilsService",
        "resolveSignal",
        {"invocationId": invocation_id, "signalName": name, "value": value},
        idempotent=True,
    )


def reject_signal(conf: ConformanceEnv, invocation_id: str, name: str, reason: str) -> None:
    conf.ingress.call(
        "TestUtilsService",
        "rejectSignal",
        {"invocationId": invocation_id, "signalName": name, "reason": reason},
        idempotent=True,
    )


def send_interpreter(conf: ConformanceEnv, command: dict) -> str:
    return conf.ingress.send(
        INTERPRETER, "interpretCommands", interpret(command), key=new_key(), idempotent=True
    ).invocation_id


class TestCombinators:
    def test_awakeableOrTimeoutUsingAwaitAny(self, conf: ConformanceEnv) -> None:
        result = conf.ingress.call(
            INTERPRETER,
            "interpretCommands",
            interpret(combinator("awaitAny", create_awakeable("awk1"), sleep(100))),
            key=new_key(),
            idempotent=True,
        )
        assert result == "sleep"

    def test_awakeableOrTimeoutUsingAwakeableTimeoutCommand(self, conf: ConformanceEnv) -> None:
        error = expect_http_error(
            lambda: conf.ingress.call(
                INTERPRETER,
                "interpretCommands",
                interpret(
                    {
                        "type": "awaitAwakeableOrTimeout",
                        "awakeableKey": "should-timeout-awk",
                        "timeoutMillis": 100,
                    }
                ),
                key=new_key(),
                idempotent=True,
            )
        )
        assert "await-timeout" in error.message

    def test_firstSuccessfulCompletedAwakeable(self, conf: ConformanceEnv) -> None:
        test_id = new_key()
        ingress = conf.ingress
        with ThreadPoolExecutor(1) as pool:
            result = pool.submit(
                ingress.call,
                INTERPRETER,
                "interpretCommands",
                interpret(
                    combinator(
                        "awaitAnySuccessful",
                        create_awakeable("awk0"),
                        run_throw("run0"),
                        create_awakeable("awk1"),
                        run_throw("run1"),
                        create_awakeable("awk2"),
                        run_throw("run2"),
                    )
                ),
                key=test_id,
                idempotent=True,
            )

            def awk2_created() -> None:
                assert ingress.call(INTERPRETER, "hasAwakeable", "awk2", key=test_id) is True

            eventually(awk2_created, what="awakeable awk2 created")
            assert ingress.call(INTERPRETER, "hasAwakeable", "awk0", key=test_id, idempotent=True) is True
            assert ingress.call(INTERPRETER, "hasAwakeable", "awk1", key=test_id, idempotent=True) is True
            # Rejecting awk2 must not complete anything ...
            ingress.call(
                INTERPRETER,
                "rejectAwakeable",
                {"awakeableKey": "awk2", "reason": "fail"},
                key=test_id,
                idempotent=True,
            )
            # ... resolving awk1 completes the awaitAnySuccessful.
            ingress.call(
                INTERPRETER,
                "resolveAwakeable",
                {"awakeableKey": "awk1", "value": "awk1-result"},
                key=test_id,
                idempotent=True,
            )
            assert result.result(timeout=30) == "awk1-result"

    # ---- [v2] signals -------------------------------------------------------------------------

    def test_signalFirstSuccessfulOrAllFailed(self, conf: ConformanceEnv) -> None:
        inv = send_interpreter(
            conf,
            combinator(
                "awaitAnySuccessful", create_signal("sig0"), create_signal("sig1"), create_signal("sig2")
            ),
        )
        reject_signal(conf, inv, "sig0", "fail0")
        reject_signal(conf, inv, "sig2", "fail2")
        resolve_signal(conf, inv, "sig1", "success1")
        assert conf.ingress.attach(inv) == "success1"

    def test_signalAllSuccessfulOrFirstFailed(self, conf: ConformanceEnv) -> None:
        inv = send_interpreter(
            conf,
            combinator(
                "awaitAllSucceededOrFirstFailed",
                create_signal("sig0"),
                create_signal("sig1"),
                create_signal("sig2"),
            ),
        )
        resolve_signal(conf, inv, "sig0", "val0")
        resolve_signal(conf, inv, "sig1", "val1")
        resolve_signal(conf, inv, "sig2", "val2")
        assert conf.ingress.attach(inv) == "val0|val1|val2"

    def test_signalAllCompleted(self, conf: ConformanceEnv) -> None:
        inv = send_interpreter(
            conf,
            combinator(
                "awaitAllCompleted", create_signal("sig0"), create_signal("sig1"), create_signal("sig2")
            ),
        )
        resolve_signal(conf, inv, "sig0", "val0")
        reject_signal(conf, inv, "sig1", "err1")
        resolve_signal(conf, inv, "sig2", "val2")
        assert conf.ingress.attach(inv) == "ok:val0|err:err1|ok:val2"

    def test_signalFirstCompleted(self, conf: ConformanceEnv) -> None:
        inv = send_interpreter(
            conf, combinator("awaitAny", create_signal("sig0"), create_signal("sig1"), create_signal("sig2"))
        )
        resolve_signal(conf, inv, "sig1", "first")
        assert conf.ingress.attach(inv) == "first"

    def test_mixedRunWinsRaceAgainstSignal(self, conf: ConformanceEnv) -> None:
        # The run completes; the signal is never resolved, so it can't win.
        result = conf.ingress.call(
            INTERPRETER,
            "interpretCommands",
            interpret(combinator("awaitFirstCompleted", create_signal("sig"), run_returns("runval"))),
            key=new_key(),
            idempotent=True,
        )
        assert result == "runval"

    def test_mixedSignalWinsAfterRunFails(self, conf: ConformanceEnv) -> None:
        inv = send_interpreter(
            conf, combinator("awaitFirstSucceededOrAllFailed", run_throw("fail"), create_signal("sig"))
        )
        resolve_signal(conf, inv, "sig", "sigval")
        assert conf.ingress.attach(inv) == "sigval"

    def test_mixedAllSucceededRunAndSignal(self, conf: ConformanceEnv) -> None:
        inv = send_interpreter(
            conf, combinator("awaitAllSucceededOrFirstFailed", run_returns("runval"), create_signal("sig"))
        )
        resolve_signal(conf, inv, "sig", "sigval")
        assert conf.ingress.attach(inv) == "runval|sigval"

    def test_mixedAllCompletedRunSignalAndFailedRun(self, conf: ConformanceEnv) -> None:
        inv = send_interpreter(
            conf,
            combinator("awaitAllCompleted", run_returns("runval"), create_signal("sig"), run_throw("fail")),
        )
        resolve_signal(conf, inv, "sig", "sigval")
        assert conf.ingress.attach(inv) == "ok:runval|ok:sigval|err:fail"
