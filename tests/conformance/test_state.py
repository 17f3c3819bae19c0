"""State: read/write, one-way adds through the proxy, state keys and clear-all (§4.15)."""

from __future__ import annotations

from .harness import ConformanceEnv, eventually, invocation_id, json_bytes, long, new_key


class TestState:
    def test_add(self, conf: ConformanceEnv) -> None:
        counter = new_key()
        assert conf.ingress.call("Counter", "add", 1, key=counter, idempotent=True) == {
            "oldValue": 0,
            "newValue": 1,
        }
        assert conf.ingress.call("Counter", "add", 2, key=counter, idempotent=True) == {
            "oldValue": 1,
            "newValue": 3,
        }

    def test_proxyOneWayAdd(self, conf: ConformanceEnv) -> None:
        counter = new_key()
        request = {
            "serviceName": "Counter",
            "virtualObjectKey": counter,
            "handlerName": "add",
            "message": json_bytes(1),
        }
        for _ in range(3):
            invocation_id(conf.ingress.call("Proxy", "oneWayCall", request, idempotent=True))

        def check() -> None:
            assert long(conf.ingress.call("Counter", "get", key=counter)) == 3

        eventually(check, what=f"Counter/{counter} == 3")

    def test_listStateAndClearAll(self, conf: ConformanceEnv) -> None:
        map_name = new_key()
        another = map_name + "1"
        call = conf.ingress.call
        call("MapObject", "set", {"key": "my-key-0", "value": "my-value-0"}, key=map_name, idempotent=True)
        call("MapObject", "set", {"key": "my-key-1", "value": "my-value-1"}, key=map_name, idempotent=True)
        call("MapObject", "set", {"key": "my-key-2", "value": "my-value-2"}, key=another, idempotent=True)

        entries = call("MapObject", "clearAll", key=map_name, idempotent=True)
        assert isinstance(entries, list), entries
        for entry in entries:  # List<Entry>, decoded strictly by kotlinx
            assert isinstance(entry, dict) and set(entry) == {"key", "value"}, f"not an Entry: {entry!r}"
            assert isinstance(entry["key"], str) and isinstance(entry["value"], str), entry
        assert sorted(e["key"] for e in entries) == ["my-key-0", "my-key-1"]

        assert call("MapObject", "get", "my-key-0", key=map_name, idempotent=True) == ""
        assert call("MapObject", "get", "my-key-1", key=map_name, idempotent=True) == ""
        # The other object was left untouched.
        assert call("MapObject", "get", "my-key-2", key=another, idempotent=True) == "my-value-2"
