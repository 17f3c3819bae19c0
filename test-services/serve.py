"""Serve the conformance contract services over h2c (upstream: restatedev/e2e, sdk-tests contracts).

    PORT=9080 python test-services/serve.py

Environment:

* ``PORT`` (default 9080), ``HOST`` (default 127.0.0.1): where to listen.
* ``SERVICES``: comma-separated service names to bind (default: every contract service). An
  unknown name exits with status 2. The scenario-local ``BlockingProxy``/``Blocker`` are bound
  only when named here.
* ``E2E_REQUEST_SIGNING``: ``publickeyv1_...`` key(s), comma-separated; requests must then carry
  a valid Restate request-identity JWT.
* ``LOG_LEVEL`` (default INFO): log level of the stderr log.
"""

from gevent import monkey

monkey.patch_all()

import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from collections.abc import Mapping  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from services import UnknownServiceError, select_services  # noqa: E402

import restate_sync as restate  # noqa: E402

logger = logging.getLogger("test_services")


def build_endpoint(environ: Mapping[str, str] = os.environ) -> restate.Endpoint:
    """The endpoint the environment asks for; raises ``UnknownServiceError``/``ValueError``."""
    raw_services = environ.get("SERVICES", "")
    names = [n for n in raw_services.split(",") if n.strip()] if raw_services.strip() else None
    endpoint = restate.endpoint(*select_services(names))
    signing = environ.get("E2E_REQUEST_SIGNING", "")
    for key in (k.strip() for k in signing.split(",")):
        if key:
            endpoint.identity_key(key)
    return endpoint


def main() -> int:
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        endpoint = build_endpoint()
    except UnknownServiceError as exc:
        print(f"serve.py: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # e.g. a malformed E2E_REQUEST_SIGNING key
        print(f"serve.py: cannot build the endpoint: {exc}", file=sys.stderr)
        return 2
    host = os.environ.get("HOST") or "127.0.0.1"
    port_text = os.environ.get("PORT") or "9080"
    if not port_text.isdigit():
        print(f"serve.py: PORT must be a number, got {port_text!r}", file=sys.stderr)
        return 2
    bind = f"[{host}]:{port_text}" if ":" in host else f"{host}:{port_text}"
    if endpoint.identity_keys:
        logger.info("request signing on: %d public key(s)", len(endpoint.identity_keys))
    logger.info("binding %s", ", ".join(sorted(endpoint.services)))
    endpoint.serve(bind)
    return 0


if __name__ == "__main__":
    sys.exit(main())
