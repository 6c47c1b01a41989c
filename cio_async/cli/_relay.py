"""``cio-async relay``: run one relay of a fleet draining a Redis stream.

Kept apart from the rest of the command line, and importing ``cio_async.redis`` (and
so redis-py) only when the command runs.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from typing import Any

_EPILOG = """\
credentials come from the environment, as for every cio_async process:
  CUSTOMERIO_SITE_ID, CUSTOMERIO_TRACK_API_KEY, CUSTOMERIO_REGION (us|eu)

delivery is at least once: a relay that dies leaves what it read pending, and another
relay reclaims it after --claim-idle seconds (events keep their ids, so Customer.io
ignores the repeats). SIGTERM or SIGINT stops a relay gracefully: it stops reading,
delivers what it took (up to --drain-timeout), leaves the rest pending, and exits 0.
It exits 1 when Customer.io refuses the credentials.

run under systemd (one unit per relay; scale with relay@1, relay@2, ...):
  # /etc/systemd/system/cio-relay@.service
  [Service]
  EnvironmentFile=/etc/cio-relay.env
  ExecStart=/opt/app/.venv/bin/cio-async relay --redis redis://redis:6379/0 \\
      --consumer %H-%i --fleet-size 4
  KillSignal=SIGTERM
  TimeoutStopSec=45
  Restart=always

run under Kubernetes (a Deployment; the pod name is the consumer name):
  containers:
  - name: relay
    command: ["cio-async", "relay", "--redis", "redis://redis:6379/0",
              "--fleet-size", "4"]
    envFrom: [{secretRef: {name: customerio}}]
    env: [{name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]
  terminationGracePeriodSeconds: 45   # more than --drain-timeout + 5

  (the consumer name defaults to $POD_NAME, else <host>-<pid>)
"""


def add_parser(sub: Any) -> None:
    """Register ``relay`` on the ``cio-async`` subcommand parser."""
    p = sub.add_parser(
        "relay",
        help="deliver operations from a Redis stream to Customer.io (one relay of a fleet)",
        description="Read operations that application processes appended to a Redis "
        "stream (AsyncCustomerIO(..., stream=RedisStreamTarget(...))) in a consumer "
        "group, deliver them in batches with retries and the shared rate budget, "
        "acknowledge what Customer.io accepted, reclaim what dead relays left, and "
        "dead-letter what can never be delivered. Needs the redis extra: "
        "pip install 'cio-async[redis]'.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--redis",
        default=os.environ.get("CIO_REDIS_URL", "redis://127.0.0.1:6379/0"),
        help="Redis URL (default $CIO_REDIS_URL or redis://127.0.0.1:6379/0)",
    )
    p.add_argument("--stream", default="cio:ops", help="stream key (default cio:ops)")
    p.add_argument("--group", default="relays", help="consumer group (default relays)")
    p.add_argument("--dead-letter", default="", help="dead-letter stream (<stream>:dead)")
    p.add_argument("--consumer", default="", help="this relay's name ($POD_NAME or host-pid)")
    p.add_argument("--read-count", type=int, default=500, help="entries per read (500)")
    p.add_argument(
        "--max-in-flight", type=int, default=10_000, help="unsettled entries at most (10000)"
    )
    p.add_argument(
        "--claim-idle",
        type=float,
        default=60.0,
        help="seconds before a dead relay's entries are reclaimed (60)",
    )
    p.add_argument(
        "--max-deliveries",
        type=int,
        default=5,
        help="deliveries before an unsettled entry is dead-lettered (5)",
    )
    p.add_argument(
        "--fleet-size",
        type=int,
        default=1,
        help="relays sharing the rate budget: each one's limit while Redis is down",
    )
    p.add_argument(
        "--no-rate-budget",
        dest="rate_budget",
        action="store_false",
        help="do not share the Track rate budget through Redis",
    )
    p.add_argument(
        "--stats-interval",
        type=float,
        default=10.0,
        help="seconds between log lines with throughput, lag and pending (0: none)",
    )
    p.add_argument(
        "--drain-timeout", type=float, default=30.0, help="seconds to finish on SIGTERM (30)"
    )
    p.add_argument("--quiet", action="store_true", help="warnings and errors only")
    p.set_defaults(run=run_relay)


async def _run(args: argparse.Namespace) -> int:
    from .._client import AsyncCustomerIO
    from .._config import BatchPolicy, RetryPolicy
    from .._errors import AuthenticationError, PermissionDeniedError
    from ..redis import (
        RedisRateBudget,
        RedisStreamRelay,
        RelayOptions,
        StreamConfig,
        default_consumer_name,
    )

    config = StreamConfig(stream=args.stream, group=args.group, dead_letter=args.dead_letter)
    consumer = args.consumer or os.environ.get("POD_NAME") or default_consumer_name()
    options = RelayOptions(
        consumer=consumer,
        read_count=args.read_count,
        max_in_flight=args.max_in_flight,
        claim_idle=args.claim_idle,
        max_deliveries=args.max_deliveries,
        stats_interval=args.stats_interval,
    )
    budget = None
    client_kwargs: dict[str, Any] = {}
    if args.rate_budget:
        from .._config import ClientConfig

        cfg = ClientConfig.from_env()
        budget = RedisRateBudget(
            args.redis,
            workspace=cfg.site_id or "default",
            region=cfg.region.name,
            processes=args.fleet_size,
        )
        client_kwargs["rate_budget"] = budget
    # A relay holds what it read in the client's queue: room for all of it, waiting
    # (never dropping) when full; the retry budget stays under --claim-idle so a live
    # relay's entries are not reclaimed while it is still retrying them.
    # The relay drains (up to --drain-timeout) before closing the client, so the
    # client's own shutdown only drops what is left (it stays pending in Redis).
    batch = BatchPolicy(
        max_queue_events=max(args.max_in_flight * 2, 10_000),
        when_full="block",
        shutdown_timeout=2.0,
        retry=RetryPolicy(
            max_attempts=50, max_delay=10.0, total_timeout=max(1.0, args.claim_idle * 0.5)
        ),
    )
    client = AsyncCustomerIO.from_env(batch=batch, dedup_ttl=0, **client_kwargs)
    relay = RedisStreamRelay(
        client, args.redis, config=config, options=options, drain_timeout=args.drain_timeout
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, relay.stop)
    try:
        async with client:
            await relay.run()
    except (AuthenticationError, PermissionDeniedError) as exc:
        print(f"cio-async relay: credentials refused: {exc}", file=sys.stderr)
        return 1
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        if budget is not None:
            await budget.aclose()
    return 0


def run_relay(args: argparse.Namespace) -> int:
    """Run the ``relay`` command (blocking until SIGTERM/SIGINT)."""
    try:
        import redis  # noqa: F401
    except ImportError:
        print(
            "cio-async relay needs the redis extra: pip install 'cio-async[redis]'",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    return asyncio.run(_run(args))


__all__ = ["add_parser", "run_relay"]
