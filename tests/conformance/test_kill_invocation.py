"""KillInvocation: killing the root of a call tree frees every object on it (§4.6)."""

from __future__ import annotations

from .harness import ConformanceEnv, eventually, new_key


class TestKillInvocation:
    def test_kill(self, conf: ConformanceEnv) -> None:
        key = new_key()
        invocation_id = conf.ingress.send(
            "KillTestRunner", "startCallTree", key=key, idempotent=True
        ).invocation_id

        # Synchronisation point: the call tree has been built before it is killed.
        def registered() -> None:
            assert conf.ingress.call("AwakeableHolder", "hasAwakeable", key=key) is True

        eventually(registered, what="awakeable is registered")
        conf.ingress.call("AwakeableHolder", "unlock", "cancel", key=key, idempotent=True)

        # Retried until the admin API answers 2xx.
        eventually(lambda: conf.admin.kill_invocation(invocation_id), what="kill invocation")
        eventually(
            lambda: conf.ingress.call("KillTestSingleton", "isUnlocked", key=key),
            what="singleton service is unlocked after killing the call tree",
        )
