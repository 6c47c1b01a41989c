"""Out-of-band control of a stand-in running in another process (benchmarks, demos).

``GET /_stand-in/state`` returns the counters; ``POST /_stand-in/config`` with a JSON
object changes settings at run time: ``reset`` (forget what was received and zero the
connection counters), ``rtt``, ``rate_limit`` (null for none) and ``lean``.

Control requests bypass the simulated round trip, auth and the counters, so reading
the counts does not change them.

``lean`` is a counting mode for long load runs: a ``/api/v2/batch`` body is parsed
and its operations counted by ``type.action``, but not validated, deduplicated or
recorded. A full check costs the stand-in several microseconds per operation, which
for a million events would make the stand-in, not the client, the bottleneck.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

if TYPE_CHECKING:
    from ._standin import StandIn

__all__ = ["CONTROL_PREFIX", "lean_batch", "register_control"]

CONTROL_PREFIX = "/_stand-in/"


def state(standin: StandIn) -> dict[str, Any]:
    return {
        "counts": dict(standin.counts),
        "connections": standin.connections,
        "max_concurrent": standin.max_concurrent,
        "rtt": standin.rtt,
        "rate_limit": standin.rate_limit,
        "lean": standin.lean,
        "url": standin.url,
    }


def register_control(standin: StandIn, app: web.Application) -> None:
    """Add the ``/_stand-in/`` control routes to ``app``."""

    async def get_state(request: web.Request) -> web.Response:
        return _json(state(standin))

    async def configure(request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read() or b"{}")
        except orjson.JSONDecodeError:
            return _json({"error": "body is not valid JSON"}, 400)
        if not isinstance(body, Mapping):
            return _json({"error": "body must be an object"}, 400)
        if body.get("reset"):
            standin.reset()
            standin.connections = 0
            standin.max_concurrent = 0
            standin._rate_window.clear()
        if "rtt" in body:
            standin.rtt = float(body["rtt"])
        if "rate_limit" in body:
            limit = body["rate_limit"]
            standin.rate_limit = None if limit is None else float(limit)
            standin._rate_window.clear()
        if "lean" in body:
            standin.lean = bool(body["lean"])
        return _json(state(standin))

    app.router.add_get(CONTROL_PREFIX + "state", get_state)
    app.router.add_post(CONTROL_PREFIX + "config", configure)


def lean_batch(standin: StandIn, raw: bytes) -> web.Response:
    """Count a v2 batch's operations without checking or recording them."""
    try:
        body = orjson.loads(raw)
        batch = body["batch"]
        tally = Counter(f"{op['type']}.{op['action']}" for op in batch)
    except (orjson.JSONDecodeError, KeyError, TypeError):
        standin.counts["lean_malformed"] += 1
        return _json({"errors": [{"reason": "invalid", "field": "", "message": "bad batch"}]}, 400)
    counts = standin.counts
    counts["batches"] += 1
    counts["operations"] += len(batch)
    counts.update(tally)
    return _json({})


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")
