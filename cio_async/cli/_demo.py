"""``cio-async demo``: the client against an embedded stand-in, with injected faults."""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from typing import Any, TextIO

from .._client import AsyncCustomerIO
from .._config import BatchPolicy, RetryPolicy
from .._model import Object, Relationship
from ..testing import StandIn
from ._progress import Progress

_PLANS = ("free", "starter", "pro", "enterprise")
_EVENTS = ("page_viewed", "added_to_cart", "checkout_started", "purchase", "invite_sent")


def add_parser(sub: Any) -> None:
    """Register ``demo`` with the ``cio-async`` subcommands."""
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
    demo.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_demo(args, sys.stdout))


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
