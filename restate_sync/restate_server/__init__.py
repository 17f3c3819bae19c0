"""Find, install and run a real ``restate-server`` process (standard library only).

One job per module:

* :mod:`.install` — find the pinned binary (``RESTATE_SERVER_BIN``, then ``PATH`` with a version
  check, then the cache), installing it with npm into the cache under a file lock;
* :mod:`.config` — the environment variables one server node is configured with;
* :mod:`.process` — :class:`RestateServer`, one server (or one node) on loopback (free ports, its
  own data directory, readiness, stop/kill/restart, the log's tail, cleanup at exit);
* :mod:`.cluster` — :class:`RestateCluster`, N such nodes forming one replicated cluster, with
  kill/stop/restart of one node on its own data directory;
* :mod:`.readiness` — whether every partition has a leader that takes writes (health is not enough);
* :mod:`.processes` — the local-process toolkit underneath, shared with the test harnesses and
  the benchmarks (free ports, bounded waiting, process groups, log files);
* :mod:`.cli` — the command line the Makefile and CI use to pre-install the binary::

    python -m restate_sync.restate_server install   # installs if needed, prints the binary path
    python -m restate_sync.restate_server path      # prints the binary path, never installs

::

    with RestateServer() as server:
        server.register_deployment("http://127.0.0.1:9080")
        print(server.ingress_url)

    with RestateCluster(nodes=3) as cluster:
        cluster.register_deployment("http://127.0.0.1:9080")
        cluster.kill_node(1)
        cluster.start_node(1)

Everything here uses only the standard library (``subprocess``, ``socket``, ``time``), so it
works in plain threads and under gevent monkey-patching alike.
"""

from .cli import main
from .cluster import RestateCluster
from .errors import RestateServerError, ServerBinaryNotFound
from .install import NPM_PACKAGE, RESTATE_SERVER_VERSION, cache_dir, find_server_binary, install_server
from .process import RestateServer

__all__ = [
    "NPM_PACKAGE",
    "RESTATE_SERVER_VERSION",
    "RestateCluster",
    "RestateServer",
    "RestateServerError",
    "ServerBinaryNotFound",
    "cache_dir",
    "find_server_binary",
    "install_server",
    "main",
]
