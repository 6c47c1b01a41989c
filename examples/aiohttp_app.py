"""Tracking from an aiohttp app.

    CUSTOMERIO_SITE_ID=... CUSTOMERIO_TRACK_API_KEY=... python -m examples.aiohttp_app

``aiohttp_cleanup_ctx`` starts the client with the app and flushes and closes it on
cleanup, which ``web.run_app`` runs after SIGTERM/SIGINT stopped the server.
"""

from __future__ import annotations

import os

from aiohttp import web

from cio_async import CLIENT_KEY, AsyncCustomerIO, aiohttp_cleanup_ctx


async def page_view(request: web.Request) -> web.Response:
    cio = request.app[CLIENT_KEY]
    cio.page_nowait(request.match_info["user"], request.query.get("url", "/"))
    return web.json_response({"ok": True})


async def purchase(request: web.Request) -> web.Response:
    body = await request.json()
    cio = request.app[CLIENT_KEY]
    event_id = await cio.track(request.match_info["user"], "purchase", body)
    return web.json_response({"event_id": event_id})


def make_app() -> web.Application:
    """The app, with the Customer.io client configured from ``CUSTOMERIO_*``."""
    app = web.Application()
    app.router.add_post("/page/{user}", page_view)
    app.router.add_post("/purchase/{user}", purchase)
    app.cleanup_ctx.append(aiohttp_cleanup_ctx(AsyncCustomerIO.from_env(), timeout=10))
    return app


if __name__ == "__main__":
    web.run_app(make_app(), host="127.0.0.1", port=int(os.environ.get("PORT", "8080")))
