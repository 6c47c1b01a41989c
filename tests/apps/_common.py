"""Shared bits of the test apps: a client from argv and a final JSON report."""

from __future__ import annotations

import json
import sys
from typing import Any

from cio_async import AsyncCustomerIO, BatchPolicy, Operation, Region, RetryPolicy


def make_client(url: str, dropped: list[str]) -> AsyncCustomerIO:
    def on_drop(op: Operation, reason: str) -> None:
        dropped.append(op.event_id or op.key)

    return AsyncCustomerIO(
        "stand-in-site",
        "stand-in-track-key",
        region=Region.custom(url),
        batch=BatchPolicy(
            linger=0.02,
            max_batch_events=50,
            retry=RetryPolicy(max_attempts=5, initial_delay=0.01, max_delay=0.05),
        ),
        on_drop=on_drop,
    )


def report(client: AsyncCustomerIO, dropped: list[str], **extra: Any) -> None:
    s = client.stats()
    line = {
        "admitted": s.admitted,
        "delivered": s.delivered,
        "failed": s.failed_total,
        "dropped": s.dropped_total,
        "dropped_ids": dropped,
        "closed": client.closed,
        **extra,
    }
    print("REPORT " + json.dumps(line), flush=True)
    sys.stdout.flush()
