"""CallOrdering: invoke vs background-invoke ordering (upstream: restatedev/e2e, sdk-tests)."""

from __future__ import annotations

import pytest

from .harness import ConformanceEnv, json_bytes, new_key

# The last call must be synchronous so that ListObject.clear runs after every append.
ORDERINGS = [[True, False, False], [False, True, False], [True, True, False]]


class TestCallOrdering:
    @pytest.mark.parametrize("ordering", ORDERINGS, ids=lambda o: ",".join(str(b).lower() for b in o))
    def test_ordering(self, conf: ConformanceEnv, ordering: list[bool]) -> None:
        list_name = new_key()
        requests = [
            {
                "proxyRequest": {
                    "serviceName": "ListObject",
                    "virtualObjectKey": list_name,
                    "handlerName": "append",
                    "message": json_bytes(str(index)),
                },
                "oneWayCall": background,
                "awaitAtTheEnd": not background,
            }
            for index, background in enumerate(ordering)
        ]
        conf.ingress.call("Proxy", "manyCalls", requests, idempotent=True)

        assert conf.ingress.call("ListObject", "clear", key=list_name, idempotent=True) == ["0", "1", "2"]
