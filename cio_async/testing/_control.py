"""Out-of-band control of a stand-in running in another process (demos, manual tests,
benchmarks).

``GET /_stand-in/state`` returns the counters; ``POST /_stand-in/config`` with a JSON
object changes settings at run time: ``reset`` (forget what was received and zero the
connection counters), ``rtt`` and ``rate_limit`` (null for none).

Control requests, and any route added under ``CONTROL_PREFIX``, bypass the simulated
round trip, auth and the counters, so reading the counts does not change them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

if TYPE_CHECKING:
    from ._standin import StandIn

__all__ = ["CONTROL_PREFIX", "register_control"]

CONTROL_PREFIX = "/_stand-in/"


def state(standin: StandIn) -> dict[str, Any]:
    return {
        "counts": dict(standin.counts),
        "connections": standin.connections,
        "max_concurrent": standin.max_concurrent,
        "rtt": standin.rtt,
        "rate_limit": standin.rate_limit,
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
            standin.reset(connections=True)
        if "rtt" in body:
            standin.rtt = float(body["rtt"])
        if "rate_limit" in body:
            limit = body["rate_limit"]
            standin.rate_limit = None if limit is None else float(limit)
        return _json(state(standin))

    app.router.add_get(CONTROL_PREFIX + "state", get_state)
    app.router.add_post(CONTROL_PREFIX + "config", configure)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")
