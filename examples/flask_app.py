"""A Flask app with Restate handlers mounted at ``/restate``, one port for both.

Patch first: the first lines of the process monkey-patch the standard library, so the blocking
network call in ``Weather.report``'s ``run`` step (``urllib``, through gevent) lets every other
invocation and every Flask request go on meanwhile.

Serve it with gunicorn's gevent worker (request/response mode)::

    gunicorn -k gevent --bind 127.0.0.1:8000 examples.flask_app:app

or directly (``python examples/flask_app.py``, gevent's pywsgi on ``$PORT``, default 8000), then
register the mounted endpoint with restate-server, over HTTP/1.1::

    curl localhost:9070/deployments -H 'content-type: application/json' \\
        -d '{"uri": "http://127.0.0.1:8000/restate", "use_http_11": true}'
    curl localhost:8080/Weather/report -H 'content-type: application/json' -d '"Lisbon"'
    curl localhost:8000/                     # Flask, as before

``Weather.report`` asks this same app's ``/api/forecast/<city>`` route over HTTP (any HTTP API
would do; ``FORECAST_URL`` points it elsewhere) and remembers the answer durably.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import os  # noqa: E402
import urllib.parse  # noqa: E402
import urllib.request  # noqa: E402

from flask import Flask, Response, jsonify  # noqa: E402
from werkzeug.middleware.dispatcher import DispatcherMiddleware  # noqa: E402

import restate_sync as restate  # noqa: E402

PORT = int(os.environ.get("PORT", "8000"))
FORECAST_URL = os.environ.get("FORECAST_URL", f"http://127.0.0.1:{PORT}/api/forecast/")

# ---------------------------------------------------------------------------- the existing app

flask_app = Flask(__name__)


@flask_app.get("/")
def index() -> str:
    return "An ordinary Flask app; Restate handlers live under /restate."


@flask_app.get("/api/forecast/<city>")
def forecast(city: str) -> Response:
    return jsonify({"city": city, "sky": "sunny" if len(city) % 2 else "cloudy"})


# ---------------------------------------------------------------------------- durable handlers


def fetch_forecast(city: str) -> dict[str, str]:
    """Real network I/O: an HTTP GET, cooperative because the process is monkey-patched."""
    url = FORECAST_URL + urllib.parse.quote(city)
    with urllib.request.urlopen(url, timeout=10) as response:
        return dict(json.loads(response.read()))


class Weather(restate.Service):
    @restate.handler
    def report(ctx: restate.Context, city: str) -> str:
        # the HTTP call runs once; a retry or a replay reads its journaled result
        forecast = ctx.run_sync("fetch forecast", fetch_forecast, city)
        return f"{forecast['city']}: {forecast['sky']}"


class Visits(restate.VirtualObject):
    @restate.handler
    def record(ctx: restate.ObjectContext, page: str) -> int:
        count = (ctx.get("count") or 0) + 1
        ctx.set("count", count)
        return count


endpoint = restate.endpoint(Weather, Visits)

# the WSGI app to serve: Flask's routes, and the endpoint (request/response mode) under /restate
app = DispatcherMiddleware(flask_app.wsgi_app, {"/restate": endpoint.app})


if __name__ == "__main__":
    from gevent.pywsgi import WSGIServer

    print(f"serving on http://127.0.0.1:{PORT} (Restate deployment: http://127.0.0.1:{PORT}/restate)")
    WSGIServer(("127.0.0.1", PORT), app).serve_forever()
