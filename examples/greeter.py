"""Hello World: the simplest stateless service.

restate-sync serve examples/greeter.py:endpoint --bind 127.0.0.1:9080
curl localhost:8080/Greeter/greet -H 'content-type: application/json' -d '"World"'
"""

import restate_sync as restate


class Greeter(restate.Service):
    """Greets people, durably."""

    @restate.handler
    def greet(ctx: restate.Context, name: str) -> str:
        return ctx.run_sync("build-greeting", lambda: f"Hello, {name}!")


endpoint = restate.endpoint(Greeter)
