"""A Starlette app under uvicorn that tracks an event per request; uvicorn handles
SIGTERM and runs the lifespan shutdown."""

from __future__ import annotations

import signal
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from cio_async import asgi_lifespan
from tests.apps._common import make_client, report


async def hit(request: Request) -> PlainTextResponse:
    i = int(request.query_params["i"])
    event_id = request.state.cio.track_nowait(f"u{i % 10}", "hit", {"i": i})
    return PlainTextResponse(event_id)


def main() -> None:
    url, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    dropped: list[str] = []
    client = make_client(url, dropped)
    app = Starlette(routes=[Route("/hit", hit)], lifespan=asgi_lifespan(client, timeout=timeout))
    # uvicorn re-raises SIGTERM once it has shut down (the lifespan, and so the client,
    # is closed by then); a no-op handler lets this script print its report afterwards.
    signal.signal(signal.SIGTERM, lambda *_: None)
    print("READY", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    report(client, dropped)


if __name__ == "__main__":
    main()
