"""``cio-async serve-stand-in`` (and ``python -m cio_async.testing``): the stand-in
server in its own process, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import Any, TextIO

from ..testing import StandIn


def add_parser(sub: Any) -> None:
    """Register ``serve-stand-in`` with the ``cio-async`` subcommands."""
    serve = sub.add_parser(
        "serve-stand-in",
        help="run the Customer.io stand-in server for manual testing",
        description="Serve the Track (and App) API stand-in until Ctrl-C.",
    )
    add_arguments(serve)
    serve.set_defaults(run=run)


def add_arguments(serve: argparse.ArgumentParser) -> None:
    """The server's options (also used by servers built on this one)."""
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8089)
    serve.add_argument("--rtt", type=float, default=0.0, help="simulated round trip (s)")
    serve.add_argument("--tls", action="store_true", help="serve HTTPS (self-signed)")
    serve.add_argument(
        "--rate-limit",
        type=float,
        default=None,
        help="answer 429 beyond this many requests per second",
    )
    serve.add_argument(
        "--fail-first", type=int, default=0, help="answer the first N requests with --fail-status"
    )
    serve.add_argument("--fail-status", type=int, default=503)
    serve.add_argument(
        "--no-record", action="store_true", help="count but do not keep operations (long runs)"
    )
    serve.add_argument("--site-id", default="stand-in-site")
    serve.add_argument("--track-api-key", default="stand-in-track-key")
    serve.add_argument("--app-api-key", default="stand-in-app-key")


def run(args: argparse.Namespace) -> int:
    out = sys.stdout
    return asyncio.run(serve_until_stopped(make_server(args, out), out))


def make_server(args: argparse.Namespace, out: TextIO) -> StandIn:
    """The stand-in the options describe, not started yet."""
    ssl_context = None
    if args.tls:
        ssl_context, ca_path = _self_signed(args.host)
        print(f"CA certificate: {ca_path}", file=out)
    server = StandIn(
        host=args.host,
        port=args.port,
        rtt=args.rtt,
        ssl_context=ssl_context,
        record=not args.no_record,
        site_id=args.site_id,
        track_api_key=args.track_api_key,
        app_api_key=args.app_api_key,
    )
    if args.rate_limit:
        server.rate_limit = args.rate_limit
    if args.fail_first:
        server.fail_next(args.fail_status, times=args.fail_first)
    return server


async def serve_until_stopped(server: StandIn, out: TextIO) -> int:
    """Start ``server``, print where it listens, and serve until SIGINT or SIGTERM."""
    await server.start()
    print(f"stand-in listening on {server.url}", file=out)
    print(
        f"  site_id={server.site_id} track_api_key={server.track_api_key} "
        f"app_api_key={server.app_api_key}",
        file=out,
    )
    out.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.close()
        print(f"stand-in stopped: {dict(server.counts)}", file=out)
    return 0


def _self_signed(host: str) -> tuple[Any, str]:
    try:
        import trustme
    except ImportError:
        raise SystemExit("--tls needs the 'trustme' package (pip install trustme)") from None
    import os
    import ssl
    import tempfile

    ca = trustme.CA()
    cert = ca.issue_cert(host, "localhost", "127.0.0.1")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    fd, path = tempfile.mkstemp(suffix=".pem", prefix="cio-stand-in-ca-")
    os.close(fd)
    ca.cert_pem.write_to_path(path)
    return ctx, path
