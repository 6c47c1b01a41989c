"""The stand-in for benchmark runs: ``python -m benchmarks.standin [options]`` takes
the options of ``cio-async serve-stand-in`` and adds a *lean* counting mode.

Lean mode exists only for long load runs: a ``/api/v2/batch`` body is parsed and its
operations counted by ``type.action``, but not validated, deduplicated or recorded.
A full check of every operation would make the stand-in, not the client being
measured, the bottleneck of a run of a million events. It is switched at run time
with ``POST /_stand-in/lean`` and a JSON body ``{"lean": true}`` (out of band, like
the stand-in's own control routes), and applies after the stand-in's simulated round
trip, faults and auth, so only the checking is skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
from aiohttp import web

from cio_async.cli._serve import add_arguments, make_server, serve_until_stopped
from cio_async.testing import StandIn
from cio_async.testing._control import CONTROL_PREFIX

LEAN_ROUTE = CONTROL_PREFIX + "lean"
_BATCH_PATH = "/api/v2/batch"


class LeanCounting:
    """Adds lean mode (off until switched on) to a stand-in that has not started."""

    def __init__(self, standin: StandIn) -> None:
        self.standin = standin
        self.on = False
        # Appended, so it runs inside the stand-in's own middleware.
        standin.app.middlewares.append(self._middleware)
        standin.add_routes(self._register)

    def _register(self, app: web.Application) -> None:
        async def switch(request: web.Request) -> web.Response:
            try:
                body = orjson.loads(await request.read() or b"{}")
            except orjson.JSONDecodeError:
                return _json({"error": "body is not valid JSON"}, 400)
            if isinstance(body, dict) and "lean" in body:
                self.on = bool(body["lean"])
            return _json({"lean": self.on})

        app.router.add_post(LEAN_ROUTE, switch)

    @web.middleware
    async def _middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        if self.on and request.path == _BATCH_PATH and request.method == "POST":
            return self.count(await request.read())
        return await handler(request)

    def count(self, raw: bytes) -> web.Response:
        """Count a v2 batch's operations without checking or recording them."""
        counts = self.standin.counts
        try:
            batch = orjson.loads(raw)["batch"]
            tally = Counter(f"{op['type']}.{op['action']}" for op in batch)
        except (orjson.JSONDecodeError, KeyError, TypeError):
            counts["lean_malformed"] += 1
            return _json(
                {"errors": [{"reason": "invalid", "field": "", "message": "bad batch"}]}, 400
            )
        counts["batches"] += 1
        counts["operations"] += len(batch)
        counts.update(tally)
        return _json({})


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.standin",
        description="The stand-in with a lean counting mode, for benchmark runs.",
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    server = make_server(args, sys.stdout)
    LeanCounting(server)
    return asyncio.run(serve_until_stopped(server, sys.stdout))


if __name__ == "__main__":
    sys.exit(main())
