"""Tracking from a FastAPI app without slowing the handler.

    CUSTOMERIO_SITE_ID=... CUSTOMERIO_TRACK_API_KEY=... uvicorn examples.fastapi_app:app

The client starts with the app and is flushed and closed when uvicorn shuts down
(after it stopped taking requests), so a deploy delivers or reports every event a
request admitted.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from pydantic import BaseModel

from cio_async import AsyncCustomerIO, asgi_lifespan

app = FastAPI(lifespan=asgi_lifespan(AsyncCustomerIO.from_env(), timeout=10))


class Signup(BaseModel):
    """The request body of ``POST /signup``."""

    user_id: str
    email: str
    plan: str = "free"


@app.post("/signup")
async def signup(body: Signup, request: Request) -> dict[str, bool]:
    cio: AsyncCustomerIO = request.state.cio
    # Returns once queued (or False when deduplicated); delivered in the background.
    await cio.identify(body.user_id, {"email": body.email, "plan": body.plan})
    cio.track_nowait(body.user_id, "signed_up", {"plan": body.plan})
    return {"ok": True}


@app.post("/checkout/{user}")
async def checkout(user: str, request: Request) -> dict[str, bool]:
    # wait=True: respond only once Customer.io accepted the event (about one round trip).
    await request.state.cio.track(user, "checkout_started", {"cart": 3}, wait=True)
    return {"ok": True}
