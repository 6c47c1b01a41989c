"""The ``cio-async`` command line: ``demo``, ``serve-stand-in`` and ``import``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from ._client import AsyncCustomerIO
from ._config import BatchPolicy, RetryPolicy
from ._model import Object, Relationship
from .testing import StandIn

_PLANS = ("free", "starter", "pro", "enterprise")
_EVENTS = ("page_viewed", "added_to_cart", "checkout_started", "purchase", "invite_sent")


class _Progress:
    """A live progress line on a terminal; plain periodic lines otherwise."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.last = 0.0

    def show(self, text: str, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < (0.1 if self.tty else 1.0):
            return
        self.last = now
        if self.tty:
            self.out.write("\r\x1b[2K" + text)
        else:
            self.out.write(text + "\n")
        self.out.flush()

    def done(self) -> None:
        if self.tty:
            self.out.write("\n")
            self.out.flush()


async def _demo(args: argparse.Namespace, out: TextIO) -> int:
    rnd = random.Random(args.seed)
    async with StandIn(rtt=args.rtt) as server:
        print(f"stand-in Customer.io listening on {server.url} (no credentials needed)", file=out)
        retry = RetryPolicy(max_attempts=6, initial_delay=0.05, max_delay=0.5)
        batch = BatchPolicy(
            linger=0.05,
            max_batch_events=500,
            retry=RetryPolicy(max_attempts=8, initial_delay=0.05, max_delay=1.0),
        )
        dropped: list[tuple[str, str]] = []
        failed: list[str] = []
        client = AsyncCustomerIO(
            **server.client_kwargs(),
            retry=retry,
            batch=batch,
            on_drop=lambda op, reason: dropped.append((op.key, reason)),
            on_error=lambda exc, op: failed.append(f"{op!r}: {exc}"),
        )
        async with client:
            print("\n1) direct Track API v1 calls (one request each):", file=out)
            await client.v1.identify("demo-1", {"email": "ada@example.com", "plan": "pro"})
            eid = await client.v1.track("demo-1", "signed_up", {"source": "demo"})
            for req in server.requests:
                print(
                    f"   sent     {req.method:6} {req.raw_path}  {req.body.decode()[:70]}", file=out
                )
            for op in server.operations:
                print(f"   received {op.type}.{op.action} {op.identifiers}", file=out)
            print(f"   event id {eid} (a ULID, reused on retries)", file=out)
            server.reset()

            print(
                f"\n2) streaming {args.events} operations through the batching pipeline"
                + (" with injected faults" if args.faults else "")
                + ":",
                file=out,
            )
            if args.faults:
                server.fail_next(503, times=2, path="/api/v2/batch")
                server.drop_next(after_processing=True, path="/api/v2/batch")
                server.fail_next(429, retry_after=0.2, path="/api/v2/batch")
            progress = _Progress(out)
            started = time.monotonic()
            people = max(1, args.events // 10)
            for i in range(args.events):
                pid = f"user-{rnd.randrange(people)}"
                roll = rnd.random()
                if roll < 0.15:
                    await client.identify(
                        pid, {"plan": rnd.choice(_PLANS), "email": f"{pid}@example.com"}
                    )
                elif roll < 0.2:
                    await client.send(
                        Object(1, f"team-{rnd.randrange(20)}").identify(
                            {"name": "Team"}, relationships=[Relationship(pid)]
                        )
                    )
                else:
                    await client.track(pid, rnd.choice(_EVENTS), {"n": i})
                if i % 200 == 0:
                    s = client.stats()
                    rate = s.admitted / max(1e-9, time.monotonic() - started)
                    progress.show(
                        f"   {rate:9,.0f} ops/s  queued {s.queue_depth:6}  delivered "
                        f"{s.delivered:7}  retried {s.retried:3}  batches {s.batches_sent:4}"
                    )
                    await asyncio.sleep(0)
            result = await client.flush(timeout=30)
            s = client.stats()
            elapsed = time.monotonic() - started
            progress.show(
                f"   {s.admitted / elapsed:9,.0f} ops/s  queued {s.queue_depth:6}  delivered "
                f"{s.delivered:7}  retried {s.retried:3}  batches {s.batches_sent:4}",
                force=True,
            )
            progress.done()
        s = client.stats()
        print("\n3) what the stand-in received:", file=out)
        for key in sorted(k for k in server.counts if "." in k):
            print(f"   {key:28} {server.counts[key]:7}", file=out)
        print(f"   {'requests':28} {server.counts['requests']:7}", file=out)
        print(
            f"   {'duplicate events ignored':28} {server.counts['duplicate_events_ignored']:7}",
            file=out,
        )
        print("\n4) what the client accounted for:", file=out)
        print(
            f"   admitted {s.admitted}, delivered {s.delivered}, failed {s.failed_total}, "
            f"dropped {s.dropped_total}, deduplicated identifies {s.deduplicated}",
            file=out,
        )
        print(
            f"   batches {s.batches_sent} (mean {s.batch_events_mean:.0f} ops, "
            f"{s.batch_bytes_mean / 1000:.1f} KB), retries {s.retried}, "
            f"connections {s.connections_opened}",
            file=out,
        )
        lat = s.latency.get("batch")
        if lat:
            print(
                f"   batch latency p50 {lat.p50 * 1000:.1f} ms, p99 {lat.p99 * 1000:.1f} ms",
                file=out,
            )
        ok = (
            result.complete
            and s.admitted == s.delivered + s.failed_total + s.dropped_total
            and not failed
            and not dropped
        )
        unique = len({o.event_id for o in server.events() if o.event_id})
        print(
            f"   unique events at the stand-in: {unique}, events tracked: {len(server.events())}",
            file=out,
        )
        print(
            "\n"
            + (
                "OK: every operation delivered exactly once."
                if ok
                else "PROBLEM: see the counts above."
            ),
            file=out,
        )
        return 0 if ok else 1


async def _serve(args: argparse.Namespace, out: TextIO) -> int:
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cio-async",
        description="cio_async: the asyncio Customer.io SDK, from the command line.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo",
        help="run the client against an embedded stand-in (no credentials needed)",
        description="Start a local Customer.io stand-in, stream identifies and events "
        "through the batching pipeline with a few injected faults, and show what was "
        "sent and what arrived.",
    )
    demo.add_argument("--events", type=int, default=20_000, help="operations to stream")
    demo.add_argument(
        "--rtt",
        type=float,
        default=0.01,
        help="simulated round-trip time in seconds (default 0.01)",
    )
    demo.add_argument(
        "--no-faults", dest="faults", action="store_false", help="do not inject faults"
    )
    demo.add_argument("--seed", type=int, default=7)

    serve = sub.add_parser(
        "serve-stand-in",
        help="run the Customer.io stand-in server for manual testing",
        description="Serve the Track (and App) API stand-in until Ctrl-C.",
    )
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cio-async`` console script."""
    args = build_parser().parse_args(argv)
    out = sys.stdout
    try:
        if args.command == "demo":
            return asyncio.run(_demo(args, out))
        if args.command == "serve-stand-in":
            return asyncio.run(_serve(args, out))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
