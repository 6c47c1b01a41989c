"""Outage then recovery, with default settings: ``python -m benchmarks.outage
[--outage 600] [--rate 300]``.

A producer tracks ``rate`` events a second throughout; the stand-in (in this process,
on loopback) answers every batch with 503 for ``outage`` seconds, then recovers. The
script reports how many events were admitted, delivered and lost, and how long after
the server's return delivery resumed (first accepted batch) and caught up (everything
admitted during the outage delivered). The issue's numbers: 100% delivered after a
10-minute outage within the default retry budget, delivery resumed within 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from typing import Any


async def run(outage: float, rate: int) -> dict[str, Any]:
    from cio_async import AsyncCustomerIO, QueueFullError
    from cio_async.testing import StandIn

    logging.getLogger("cio_async").setLevel(logging.ERROR)
    failed: list[str] = []
    async with StandIn() as server:
        cio = AsyncCustomerIO(
            **server.client_kwargs(), on_error=lambda exc, op: failed.append(repr(exc))
        )
        loop = asyncio.get_running_loop()
        async with cio:
            await cio.track("warm-up", "e", wait=True)
            server.fail_next(503, times=10**9, path="/api/v2/batch")
            admitted = refused = 0
            start = loop.time()
            while loop.time() - start < outage:
                for _ in range(rate // 10):
                    try:
                        cio.track_nowait(f"u{admitted % 1000}", "outage")
                        admitted += 1
                    except QueueFullError:
                        refused += 1  # the queue's bounds (200,000 by default)
                await asyncio.sleep(0.1)
            before = len(server.requests)
            server.clear_faults()
            back = loop.time()
            resumed = None
            while resumed is None:
                if any(r.status == 200 for r in server.requests[before:]):
                    resumed = loop.time() - back
                await asyncio.sleep(0.01)
            result = await cio.flush(timeout=120)
            caught_up = loop.time() - back
            stats = cio.stats()
        delivered = len(server.events("outage"))
    return {
        "outage_s": outage,
        "admitted": admitted,
        "refused_queue_full": refused,
        "delivered": delivered,
        "lost": admitted - delivered,
        "failed_reports": len(failed),
        "resumed_after_s": round(resumed, 3),
        "caught_up_after_s": round(caught_up, 3),
        "flush_complete": result.complete,
        "retried": stats.retried,
        "concurrency_limit_after": stats.concurrency_limit,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--outage", type=float, default=600.0, help="seconds of 503s")
    parser.add_argument("--rate", type=int, default=300, help="events per second")
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(run(args.outage, args.rate)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
