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
from ._import import FORMATS, ImportOptions, run_import
from ._import_lines import KINDS, LineOptions
from ._model import Object, Relationship
from ._progress import Progress
from ._relay_cli import add_relay_parser, run_relay
from .testing import StandIn

_PLANS = ("free", "starter", "pro", "enterprise")
_EVENTS = ("page_viewed", "added_to_cart", "checkout_started", "purchase", "invite_sent")


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
            progress = Progress(out)
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

    _add_import_parser(sub)
    add_relay_parser(sub)
    return parser


_IMPORT_EPILOG = """\
line formats
  NDJSON (.ndjson, .jsonl): one JSON object per line. "type" is identify, track
  (or event), page, screen or delete; the person is one of "id", "email",
  "cio_id", "phone" (or "identifiers": {"email": ...}).
    {"type": "identify", "id": "42", "attributes": {"plan": "pro"}}
    {"type": "track", "email": "ada@example.com", "name": "purchase",
     "data": {"amount": 30}, "timestamp": 1700000000}
    {"type": "page", "id": "42", "url": "/pricing"}
    {"type": "screen", "id": "42", "name": "Settings"}
    {"type": "delete", "id": "43"}
  "timestamp" is Unix seconds or ISO 8601 (UTC unless it has an offset). Events
  may carry their own "event_id" (a ULID); otherwise one is derived from the
  input and the line, so a line sent twice is ignored by Customer.io as a repeat.

  CSV (.csv) or TSV (.tsv): a header line, then one --kind operation per row
  (default identify). The person is the --id-column, else the first of id,
  cio_id, email, phone. A timestamp column is the operation's time; track and
  screen rows take their name from a name column (or --event NAME), page rows
  their url from a url column. Every other column is an attribute (identify) or
  event data; values stay strings and empty cells are left out.

resuming
  A checkpoint (FILE.checkpoint.json) records the first line not yet settled
  (delivered, or written to the errors file) and a hash of the input before it.
  Run the same command again to carry on from there; --restart starts over.

exit status
  0 every line delivered    1 some lines rejected (see the errors file)
  2 usage, configuration or input error    3 delivery failed (resume later)
  130 interrupted (Ctrl-C or SIGTERM; resume later)

environment
  CUSTOMERIO_SITE_ID, CUSTOMERIO_TRACK_API_KEY (Track API credentials),
  CUSTOMERIO_REGION (us or eu), CUSTOMERIO_TRACK_URL (another host).
"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def _add_import_parser(sub: Any) -> None:
    imp = sub.add_parser(
        "import",
        help="bulk-load people and events from NDJSON or CSV",
        description="Send every line of FILE (NDJSON, CSV or TSV; - for stdin) to Customer.io\n"
        "through the batching pipeline, at full speed, with a progress bar. Rejected\n"
        "lines go to an errors file with their line number and reason; an interrupted\n"
        "import resumes where it stopped without sending anything twice.",
        epilog=_IMPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    imp.add_argument("file", metavar="FILE", help="the input file, or - for stdin")
    imp.add_argument(
        "--format",
        choices=FORMATS,
        help="the input format (default: from the extension; stdin: NDJSON if the "
        "first line is an object, else CSV)",
    )
    imp.add_argument(
        "--kind",
        choices=KINDS,
        help="the operation of lines that name none (CSV: of every row; default identify)",
    )
    imp.add_argument(
        "--event",
        metavar="NAME",
        help="the event name of track/screen lines that name none (CSV: of every row)",
    )
    imp.add_argument("--id-column", metavar="NAME", help="CSV: the column with the person")
    imp.add_argument(
        "--dry-run",
        action="store_true",
        help="check every line and report the bad ones; send nothing, need no credentials",
    )
    imp.add_argument(
        "--errors",
        metavar="FILE",
        help="where rejected lines go, as NDJSON (default: FILE.errors.ndjson)",
    )
    imp.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="where progress is kept for resuming (default: FILE.checkpoint.json; "
        "stdin: none unless given)",
    )
    imp.add_argument(
        "--restart", action="store_true", help="ignore the checkpoint and start from line 1"
    )
    imp.add_argument(
        "--sandbox",
        action="store_true",
        help="send to an embedded local stand-in instead of Customer.io (no credentials)",
    )
    imp.add_argument(
        "--region", choices=("us", "eu"), help="the account's region (default: CUSTOMERIO_REGION)"
    )
    imp.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    imp.add_argument(
        "--batch-size",
        type=_positive_int,
        default=1000,
        metavar="N",
        help="operations per batch request (default 1000; a batch also stays under 475 KB)",
    )
    imp.add_argument(
        "--concurrency",
        type=_positive_int,
        default=8,
        metavar="N",
        help="batch requests in flight at once (default 8)",
    )
    imp.add_argument(
        "--drain-timeout",
        type=_seconds,
        default=5.0,
        metavar="SECONDS",
        help="on Ctrl-C, how long to wait for what is in flight (default 5)",
    )
    imp.add_argument(
        "--checkpoint-interval",
        type=_seconds,
        default=1.0,
        metavar="SECONDS",
        help="how often the checkpoint is saved while running (default 1)",
    )
    imp.add_argument(
        "--retry-timeout",
        type=_seconds,
        default=900.0,
        metavar="SECONDS",
        help="how long to retry a failing batch before stopping with status 3 (default 900)",
    )


def _import(args: argparse.Namespace) -> int:
    opts = ImportOptions(
        path=args.file,
        format=args.format,
        lines=LineOptions(kind=args.kind, event=args.event, id_column=args.id_column),
        dry_run=args.dry_run,
        errors=args.errors,
        checkpoint=args.checkpoint,
        restart=args.restart,
        sandbox=args.sandbox,
        region=args.region,
        quiet=args.quiet,
        batch_size=args.batch_size,
        concurrency=args.concurrency,
        drain_timeout=args.drain_timeout,
        checkpoint_interval=args.checkpoint_interval,
        retry_timeout=args.retry_timeout,
    )
    return run_import(opts)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cio-async`` console script."""
    args = build_parser().parse_args(argv)
    out = sys.stdout
    try:
        if args.command == "demo":
            return asyncio.run(_demo(args, out))
        if args.command == "serve-stand-in":
            return asyncio.run(_serve(args, out))
        if args.command == "import":
            return _import(args)
        if args.command == "relay":
            return run_relay(args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
