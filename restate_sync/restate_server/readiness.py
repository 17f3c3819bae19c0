"""Is a restate-server ready to take invocations? Health is not enough: every partition must be led.

A node reports healthy (``admin /health`` and ``ingress /restate/health``) well before every
partition has a leader: on a fresh three-node cluster of restate-server 1.7 the first invocation
after health blocks 4-6 s until the leaders settle. The probe here asks every partition to accept
a write through a node's ingress, the path an invocation takes (ingress → the partition's leader
→ its replicated log), without any deployment and without leaving anything behind:

* for each partition, a partition key inside its range (restate splits the 64-bit key space into
  equally sized ranges, so the middle of each range is in that partition whatever the rounding);
* an awakeable id for a made-up invocation with that partition key (``prom_1`` + URL-safe base64 of
  the 8-byte big-endian partition key, the 16-byte invocation uuid and a 4-byte entry index);
* ``POST /restate/awakeables/<id>/resolve`` on the node's ingress: answered ``202`` once that
  partition's leader appended the completion to its log (the partition processor then finds no
  such invocation and drops it; nothing is stored).

A deployment registered through one node's admin API reaches the other nodes' ingresses a moment
later; :func:`wait_services_known` waits until an ingress knows given services (a ``GET`` of a
handler that does not exist, answered "the service exists, but the handler was not found").

Measured on a fresh three-node cluster: the probe waits ~6-7 s on the first partition and then
answers in milliseconds; the first invocations after it (through every node) each take < 0.1 s.
"""

from __future__ import annotations

import base64
import http.client
import logging
import time
import uuid
from collections.abc import Iterable

from ..client import HTTPTransport, IngressClient, IngressError, target_path
from .errors import RestateServerError

__all__ = [
    "PARTITION_KEY_SPACE",
    "PROBE_HANDLER",
    "partition_probe_keys",
    "probe_awakeable_id",
    "wait_partitions_writable",
    "wait_services_known",
]

logger = logging.getLogger("restate_sync.restate_server")

PARTITION_KEY_SPACE = 1 << 64
"""Partition keys are unsigned 64-bit numbers."""

PROBE_HANDLER = "restate-sync-readiness-probe"
"""A handler name no service has: asking for it tells whether the ingress knows the service."""

_PROBE_REQUEST_TIMEOUT = 10.0
_PROBE_RETRY_INTERVAL = 0.05


def partition_probe_keys(partitions: int) -> list[int]:
    """One partition key inside each of ``partitions`` equally sized key ranges (their middles)."""
    if partitions < 1:
        raise ValueError("partitions must be >= 1")
    return [(2 * i + 1) * PARTITION_KEY_SPACE // (2 * partitions) for i in range(partitions)]


def probe_awakeable_id(partition_key: int, invocation_uuid: bytes | None = None, entry_index: int = 1) -> str:
    """The awakeable id of entry ``entry_index`` of a (made-up) invocation in ``partition_key``."""
    if not 0 <= partition_key < PARTITION_KEY_SPACE:
        raise ValueError(f"partition key out of range: {partition_key}")
    raw_uuid = invocation_uuid if invocation_uuid is not None else uuid.uuid4().bytes
    if len(raw_uuid) != 16:
        raise ValueError("the invocation uuid is 16 bytes")
    raw = partition_key.to_bytes(8, "big") + raw_uuid + entry_index.to_bytes(4, "big")
    return "prom_1" + base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def wait_partitions_writable(ingress_url: str, partitions: int, timeout: float) -> float:
    """Block until every partition accepted a probe write through ``ingress_url``; returns seconds.

    Connection errors and 5xx answers (a partition without a leader yet, a node still joining)
    are retried until ``timeout``; any other answer is an error at once. Raises
    :class:`RestateServerError` naming the partitions still not writable.
    """
    started = time.monotonic()
    deadline = started + timeout
    pending = list(enumerate(partition_probe_keys(partitions)))
    last_error = "not probed yet"
    while pending:
        index, key = pending[0]
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RestateServerError(
                f"partitions {[i for i, _ in pending]} of {partitions} not writable through {ingress_url} "
                f"after {timeout:.1f}s: {last_error}"
            )
        client = IngressClient(ingress_url, timeout=max(0.5, min(_PROBE_REQUEST_TIMEOUT, remaining)))
        try:
            client.resolve_awakeable(probe_awakeable_id(key), None)
        except IngressError as exc:
            if exc.status < 500:
                raise RestateServerError(
                    f"readiness probe of partition {index} through {ingress_url} was refused: {exc}"
                ) from exc
            last_error = f"partition {index}: {exc}"
        except (OSError, http.client.HTTPException) as exc:
            last_error = f"partition {index}: {type(exc).__name__}: {exc}"
        else:
            pending.pop(0)
            continue
        time.sleep(_PROBE_RETRY_INTERVAL)
    elapsed = time.monotonic() - started
    logger.debug("all %d partitions writable through %s after %.2fs", partitions, ingress_url, elapsed)
    return elapsed


def wait_services_known(ingress_url: str, services: Iterable[tuple[str, bool]], timeout: float) -> float:
    """Block until the ingress at ``ingress_url`` knows every ``(service name, keyed)``; returns seconds.

    Asks ``GET /<service>[/<key>]/<PROBE_HANDLER>`` (never a real handler, so nothing is invoked)
    until the answer is no longer "service ... not found". Raises :class:`RestateServerError`
    naming the services still unknown after ``timeout``.
    """
    started = time.monotonic()
    deadline = started + timeout
    pending = list(services)
    transport = HTTPTransport(ingress_url, _PROBE_REQUEST_TIMEOUT)
    last = ""
    while pending:
        name, keyed = pending[0]
        path = target_path(name, PROBE_HANDLER, "probe" if keyed else None)
        try:
            status, body = transport.request("GET", path, timeout=max(0.5, deadline - time.monotonic()))
            text = body.decode("utf-8", errors="replace")
            known = not (status == 404 and "not found" in text and "exists" not in text)
            last = f"{status} {text[:200]}"
        except (OSError, http.client.HTTPException) as exc:
            known, last = False, f"{type(exc).__name__}: {exc}"
        if known:
            pending.pop(0)
            continue
        if time.monotonic() >= deadline:
            raise RestateServerError(
                f"services {[n for n, _ in pending]} still unknown to {ingress_url} after {timeout:.1f}s: {last}"
            )
        time.sleep(_PROBE_RETRY_INTERVAL)
    return time.monotonic() - started
