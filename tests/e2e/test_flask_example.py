"""``examples/flask_app.py`` as its docstring says to run it: ``gunicorn -k gevent
examples.flask_app:app``, registered with restate-server at ``/restate``."""

from __future__ import annotations

import os
import urllib.request

import pytest

from restate_sync.client import AdminClient, IngressClient
from restate_sync.restate_server import RestateServer
from restate_sync.restate_server.processes import LoggedProcess, free_port

from .embedding import ROOT, gunicorn_command

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def test_the_flask_example_under_gunicorn(tmp_path):
    port = free_port()
    process = LoggedProcess(
        gunicorn_command("gevent", port, app="examples.flask_app:app"),
        tmp_path / "flask_app.log",
        env={**os.environ, "PORT": str(port)},
        cwd=ROOT,
        name="examples/flask_app.py under gunicorn",
    )
    process.start()
    try:
        process.wait_listening(port, timeout=30)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
            assert b"ordinary Flask app" in response.read()
        with RestateServer(partitions=1) as server:
            server.register_deployment(f"http://127.0.0.1:{port}/restate", use_http_11=True)
            (deployment,) = AdminClient(server.admin_url).deployments()
            assert deployment["protocol_type"] == "RequestResponse", deployment
            client = IngressClient(server.ingress_url)
            assert client.call("Weather", "report", "Lisbon") == "Lisbon: cloudy"
            assert client.call("Weather", "report", "Porto") == "Porto: sunny"
            assert client.call("Visits", "record", "/", key="home") == 1
            assert client.call("Visits", "record", "/", key="home") == 2
    finally:
        process.stop()
    assert "not monkey-patched" not in process.log_path.read_text()
