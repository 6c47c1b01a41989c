"""Tracking from a Starlette/FastAPI app without slowing the handler.

    uvicorn examples.fastapi_app:app
(FastAPI takes the same ``lifespan=`` argument as Starlette.)
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from cio_async import AsyncCustomerIO, asgi_lifespan

cio = AsyncCustomerIO.from_env()  # CUSTOMERIO_SITE_ID, CUSTOMERIO_TRACK_API_KEY, ...


async def checkout(request: Request) -> JSONResponse:
    user = request.path_params["user"]
    # Validated, encoded and queued in microseconds; delivered in the background.
    request.state.cio.track_nowait(user, "checkout_started", {"cart": 3})
    return JSONResponse({"ok": True})


app = Starlette(
    routes=[Route("/checkout/{user}", checkout, methods=["POST"])],
    lifespan=asgi_lifespan(cio, timeout=10),  # flush on shutdown, report what is left
)
