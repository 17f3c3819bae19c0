"""The ``restate-sync`` command line.

``restate-sync serve MODULE:ATTR --bind HOST:PORT``
    Serve an endpoint (MODULE may be a dotted module or a path to a ``.py`` file; ATTR names an
    ``Endpoint`` or a single service class).

``restate-sync dev MODULE:ATTR [--nodes 3]``
    Start a local restate-server (or a local cluster of ``--nodes`` nodes) on loopback, serve the
    endpoint, register it, and print the ingress URL with a ready-to-paste curl. Ctrl-C, SIGTERM
    or SIGHUP stops everything it started.

Both monkey-patch the standard library with gevent before loading the endpoint, unless
``--no-patch`` is given.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["load_endpoint", "load_endpoints", "main"]

logger = logging.getLogger("restate_sync.cli")


def load_endpoints(targets: list[str]) -> Any:
    """Resolve one or more ``MODULE:ATTR`` targets to one :class:`~restate_sync.Endpoint`."""
    first = load_endpoint(targets[0])
    for target in targets[1:]:
        first.bind(*load_endpoint(target).services.values())
    return first


def load_endpoint(target: str) -> Any:
    """Resolve ``MODULE:ATTR`` to an :class:`~restate_sync.Endpoint`."""
    from .endpoint import Endpoint, endpoint
    from .service import service_definition

    module_name, sep, attribute = target.rpartition(":")
    if not sep or not module_name or not attribute:
        raise SystemExit(f"error: expected MODULE:ATTR (e.g. examples/greeter.py:endpoint), got {target!r}")
    if module_name.endswith(".py") or os.sep in module_name or "/" in module_name:
        path = Path(module_name).resolve()
        if not path.is_file():
            raise SystemExit(f"error: no such file: {module_name}")
        sys.path.insert(0, str(path.parent))
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise SystemExit(f"error: cannot load {module_name}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
    else:
        sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            raise SystemExit(f"error: cannot import {module_name}: {exc}") from exc
    try:
        value = getattr(module, attribute)
    except AttributeError:
        raise SystemExit(f"error: {module_name} has no attribute {attribute!r}") from None
    if isinstance(value, Endpoint):
        return value
    try:
        service_definition(value)
    except TypeError:
        raise SystemExit(f"error: {target} is neither a restate_sync Endpoint nor a service class") from None
    return endpoint(value)


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("hpack", "h2"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def parse_limits(items: list[str]) -> dict[str, Any]:
    """``--limit NAME=VALUE`` options → ``{"limits": H2Limits, "http1_limits": Http1Limits}``.

    NAME is a field of ``H2Limits``, or ``http1.`` and a field of ``Http1Limits``; VALUE a
    number of the field's type. Unknown names and bad values raise ``ValueError`` naming them.
    """
    import dataclasses

    from .transport.h2limits import DEFAULT_LIMITS
    from .transport.http1limits import DEFAULT_HTTP1_LIMITS

    changes: dict[str, dict[str, Any]] = {"limits": {}, "http1_limits": {}}
    defaults: dict[str, Any] = {"limits": DEFAULT_LIMITS, "http1_limits": DEFAULT_HTTP1_LIMITS}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"--limit takes NAME=VALUE, got {item!r}")
        group, field_name = ("http1_limits", name[6:]) if name.startswith("http1.") else ("limits", name)
        kinds = {f.name: f.type for f in dataclasses.fields(defaults[group])}
        if field_name not in kinds:
            known = (
                ", ".join(sorted(kinds))
                if group == "limits"
                else ", ".join(f"http1.{k}" for k in sorted(kinds))
            )
            raise ValueError(f"unknown limit {name!r}; known: {known}")
        kind = float if "float" in str(kinds[field_name]) else int
        try:
            changes[group][field_name] = kind(text)
        except ValueError:
            raise ValueError(f"--limit {name} needs a number ({kind.__name__}), got {text!r}") from None
    return {
        group: dataclasses.replace(defaults[group], **fields) for group, fields in changes.items() if fields
    }


def _serve(args: argparse.Namespace) -> int:
    from .transport.serving import serve, serve_workers

    endpoint = load_endpoints(args.target)
    try:
        limits = parse_limits(args.limit)
    except ValueError as exc:  # also a limit the dataclass refuses (zero, negative, ...)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.workers > 1:
            return serve_workers(endpoint, args.bind, args.workers, grace=args.grace, **limits)
        serve(endpoint, args.bind, grace=args.grace, **limits)
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"error: cannot serve on {args.bind}: {exc}", file=sys.stderr)
        return 1
    return 0


def _dev(args: argparse.Namespace) -> int:
    from .dev import DevRuntime, DevStop

    endpoint = load_endpoints(args.target)
    server = endpoint.start(bind=args.bind)
    host, port = server.address
    runtime = DevRuntime(nodes=args.nodes, partitions=args.partitions)
    try:
        with runtime.stopped_by_signals():
            runtime.start(f"http://{host}:{port}", endpoint)
            runtime.describe()
            print(f"serving {', '.join(endpoint.services)} on http://{host}:{port} (registered)")
            example = _example_curl(endpoint, runtime.ingress_url)
            if example:
                print(f"try:\n  {example}")
            print("Ctrl-C (or SIGTERM, SIGHUP) stops the endpoint and everything restate-sync started.")
            sys.stdout.flush()
            if args.invoke:
                _invoke_and_print(runtime.ingress_url, args.invoke, args.data)
                return 0
            runtime.watch_forever()
    except KeyboardInterrupt:
        print("stopping")
    except DevStop as stop:
        print(f"stopping ({stop})")
    finally:
        server.stop(grace=2)
        runtime.close()
        sys.stdout.flush()
    return 0


def _example_curl(endpoint: Any, ingress: str) -> str | None:
    from .service import ServiceKind

    for service in endpoint.services.values():
        for handler in service.handlers.values():
            keyed = "" if service.kind is ServiceKind.SERVICE else "/my-key"
            data = " -d '\"World\"'" if handler.takes_input else ""
            return (
                f"curl {ingress}/{service.name}{keyed}/{handler.name} "
                f"-H 'content-type: application/json'{data}"
            )
    return None


def _invoke_and_print(ingress: str, path: str, data: str | None) -> None:
    from .client import IngressClient, IngressError

    parts = path.strip("/").split("/")
    if len(parts) not in (2, 3):
        raise SystemExit(f"error: --invoke takes Service/handler or Object/key/handler, got {path!r}")
    client = IngressClient(ingress)
    payload = None if data is None else _json_loads(data)
    try:
        if len(parts) == 2:
            result = client.call(parts[0], parts[1], payload)
        else:
            result = client.call(parts[0], parts[2], payload, key=parts[1])
    except IngressError as exc:
        raise SystemExit(f"error: {path} failed with {exc.status}: {exc.message}") from exc
    import json

    print(f"{path} -> {json.dumps(result)}")


def _json_loads(text: str) -> Any:
    import json

    try:
        return json.loads(text)
    except ValueError as exc:
        raise SystemExit(f"error: --data is not JSON: {exc}") from exc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="restate-sync", description="Serve restate_sync endpoints.")
    parser.add_argument("--log-level", default=os.environ.get("RESTATE_SYNC_LOG_LEVEL", "info"))
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--no-patch",
        action="store_true",
        help="do not monkey-patch the standard library with gevent (blocking I/O in a handler then "
        "stalls every invocation of the process; a warning says so)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", parents=[common], help="serve an endpoint over HTTP/2 (h2c)")
    serve.add_argument("target", nargs="+", help="MODULE:ATTR, e.g. examples/greeter.py:endpoint")
    serve.add_argument("--bind", default="0.0.0.0:9080", help="HOST:PORT to listen on (default 0.0.0.0:9080)")
    serve.add_argument(
        "--workers", type=int, default=1, help="pre-forked worker processes sharing the port (default 1)"
    )
    serve.add_argument(
        "--grace", type=float, default=10.0, help="seconds in-flight invocations get on SIGTERM (default 10)"
    )
    serve.add_argument(
        "--limit",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="change one server limit (an H2Limits field, or http1.<Http1Limits field>); "
        "repeatable; defaults and meanings in docs/limits.md",
    )
    serve.set_defaults(run=_serve)

    dev = commands.add_parser(
        "dev", parents=[common], help="serve an endpoint to a local restate-server started for you"
    )
    dev.add_argument("target", nargs="+", help="MODULE:ATTR, e.g. examples/greeter.py:endpoint")
    dev.add_argument(
        "--bind", default="127.0.0.1:0", help="HOST:PORT for the endpoint (default: a free port)"
    )
    dev.add_argument("--partitions", type=int, default=None, help="partitions (default 2; 4 for a cluster)")
    dev.add_argument(
        "--nodes",
        type=int,
        default=1,
        help="restate-server nodes: 1 (default) or a local cluster, e.g. 3; a killed node is restarted",
    )
    dev.add_argument("--invoke", metavar="SERVICE/HANDLER", help="invoke this handler once, print, and exit")
    dev.add_argument("--data", metavar="JSON", help="JSON input for --invoke")
    dev.set_defaults(run=_dev)

    args = parser.parse_args(argv)
    if not args.no_patch:
        # first, before the endpoint's modules are imported: blocking I/O in handlers then yields
        from gevent import monkey

        monkey.patch_all()
    _configure_logging(args.log_level)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
