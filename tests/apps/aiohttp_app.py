"""An aiohttp app that tracks an event per request; run_app handles SIGTERM."""

from __future__ import annotations

import sys

from aiohttp import web

from cio_async import CLIENT_KEY, aiohttp_cleanup_ctx
from tests.apps._common import make_client, report


async def hit(request: web.Request) -> web.Response:
    i = int(request.query["i"])
    event_id = request.app[CLIENT_KEY].track_nowait(f"u{i % 10}", "hit", {"i": i})
    return web.Response(text=event_id)


def main() -> None:
    url, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    dropped: list[str] = []
    client = make_client(url, dropped)
    app = web.Application()
    app.router.add_get("/hit", hit)
    app.cleanup_ctx.append(aiohttp_cleanup_ctx(client, timeout=timeout))
    print("READY", flush=True)
    web.run_app(app, host="127.0.0.1", port=port, print=None, shutdown_timeout=5)
    report(client, dropped)


if __name__ == "__main__":
    main()
