"""A real fleet for the scale-out tests and benchmarks: producer processes appending to a
Redis stream through ``AsyncCustomerIO(stream=...)``, ``cio-async relay`` processes
delivering to a stand-in, all separate OS processes on loopback.

``python -m tests.redis_fleet --events 200000`` runs the full-size scenario (3
producers, 2 relays, one relay SIGKILLed mid-run) and prints what it measured.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cio_async.testing import StandIn
from tests.redis_support import RedisServer, env_with_path

PRODUCER = r"""
import asyncio, sys, time
from cio_async import AsyncCustomerIO, BatchPolicy, Region, RetryPolicy
from cio_async.redis import RedisStreamTarget, StreamConfig

async def main():
    url, redis_url, n, tag, out, max_len, when_full = sys.argv[1:8]
    n, max_len = int(n), int(max_len)
    target = RedisStreamTarget(redis_url, StreamConfig(max_len=max_len))
    dropped, failed = [], []
    policy = BatchPolicy(max_batch_events=500, linger=0.01, max_queue_events=20_000,
                         when_full=when_full, block_timeout=60.0,
                         retry=RetryPolicy(max_attempts=1000, initial_delay=0.05,
                                           max_delay=0.5, total_timeout=120))
    ids = []
    t0 = time.perf_counter()
    async with AsyncCustomerIO("stand-in-site", "stand-in-track-key",
                               region=Region.custom(url, url), batch=policy, stream=target,
                               on_drop=lambda op, r: dropped.append(op.event_id),
                               on_error=lambda e, op: failed.append(repr(e))) as c:
        for i in range(n):
            ids.append(await c.track(f"{tag}-{i % 1000}", "load", {"i": i}))
        admit = time.perf_counter() - t0
        r = await c.flush(180)
    await target.aclose()
    dropped_set = set(dropped)
    with open(out, "w") as f:
        f.write(f"# admit_s={admit:.4f} dropped={len(dropped)} failed={len(failed)}\n")
        f.write("\n".join(i for i in ids if i not in dropped_set))
    if not r.complete:
        print("producer flush incomplete", r, failed[:3], file=sys.stderr)
        sys.exit(3)

asyncio.run(main())
"""


@dataclass
class Fleet:
    """Producers and relays around one stand-in and one redis-server."""

    server: StandIn
    redis: RedisServer
    workdir: Path
    relays: list[asyncio.subprocess.Process] = field(default_factory=list)
    producers: list[asyncio.subprocess.Process] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)

    def relay_env(self) -> dict[str, str]:
        env = env_with_path()
        env.update(
            CUSTOMERIO_SITE_ID=self.server.site_id,
            CUSTOMERIO_TRACK_API_KEY=self.server.track_api_key,
            CUSTOMERIO_TRACK_URL=self.server.url,
            CUSTOMERIO_APP_URL=self.server.url,
        )
        return env

    async def start_relay(self, name: str, *extra: str) -> asyncio.subprocess.Process:
        log = open(self.workdir / f"relay-{name}.log", "wb")  # noqa: SIM115
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cio_async",
            "relay",
            "--redis",
            self.redis.url,
            "--consumer",
            name,
            "--claim-idle",
            "2",
            "--stats-interval",
            "1",
            "--drain-timeout",
            "10",
            "--fleet-size",
            "2",
            *extra,
            env=self.relay_env(),
            stdout=log,
            stderr=log,
        )
        log.close()
        self.relays.append(proc)
        return proc

    async def start_producer(
        self, n: int, tag: str, *, max_len: int = 1_000_000, when_full: str = "block"
    ) -> asyncio.subprocess.Process:
        script = self.workdir / "producer.py"
        if not script.exists():
            script.write_text(PRODUCER)
        out = self.workdir / f"ids-{tag}.txt"
        self.outputs.append(out)
        err = open(self.workdir / f"producer-{tag}.log", "wb")  # noqa: SIM115
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            self.server.url,
            self.redis.url,
            str(n),
            tag,
            str(out),
            str(max_len),
            when_full,
            env=env_with_path(),
            stderr=err,
        )
        err.close()
        self.producers.append(proc)
        return proc

    def produced(self) -> tuple[set[str], list[dict[str, str]]]:
        ids: set[str] = set()
        headers = []
        for out in self.outputs:
            lines = out.read_text().splitlines()
            headers.append(dict(kv.split("=") for kv in lines[0][2:].split()))
            ids.update(lines[1:])
        return ids, headers

    def log(self, name: str) -> str:
        return (self.workdir / name).read_text(errors="replace")

    async def wait_delivered(self, expected: set[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not expected <= self.server.seen_event_ids:
            if time.monotonic() > deadline:
                missing = len(expected - self.server.seen_event_ids)
                raise AssertionError(f"{missing} of {len(expected)} events not delivered")
            await asyncio.sleep(0.05)

    async def stop(self) -> list[int | None]:
        codes = []
        for p in self.relays:
            if p.returncode is None:
                p.send_signal(signal.SIGTERM)
        for p in self.relays + self.producers:
            try:
                await asyncio.wait_for(p.wait(), 60)
            except asyncio.TimeoutError:
                p.kill()
                await p.wait()
            codes.append(p.returncode)
        return codes


async def run_scenario(
    events: int,
    workdir: Path,
    *,
    kill_relay: bool = True,
    crash_redis: bool = False,
    relays: int = 2,
    producers: int = 3,
    appendfsync: str = "always",
) -> dict[str, Any]:
    """``producers`` producers, ``relays`` relays; one relay SIGKILLed once a third is
    delivered, or (``crash_redis``) redis-server SIGKILLed and restarted from its AOF
    (``appendfsync``, default ``always``) once a third is delivered. With
    ``everysec`` what Redis acknowledged in its last second may be lost: the result's
    ``lost`` counts it (waiting a bounded time for the rest)."""
    redis = RedisServer(appendonly=crash_redis, appendfsync=appendfsync).start()
    try:
        async with StandIn() as server:
            fleet = Fleet(server, redis, workdir)
            t0 = time.monotonic()
            for r in range(relays):
                await fleet.start_relay(f"relay-{chr(97 + r)}")
            for k in range(producers):
                share = events // producers + (1 if k < events % producers else 0)
                await fleet.start_producer(share, f"prod{k}")
            killed_at = None
            if kill_relay or crash_redis:
                while server.counts["person.event"] < events // 3:
                    await asyncio.sleep(0.02)
                killed_at = server.counts["person.event"]
                if crash_redis:
                    redis.restart(kill=True)  # a crash: SIGKILL, then AOF replay
                else:
                    fleet.relays[0].send_signal(signal.SIGKILL)
            for p in fleet.producers:
                await asyncio.wait_for(p.wait(), 600)
            ids, headers = fleet.produced()
            lost = 0
            try:
                await fleet.wait_delivered(ids, 600 if appendfsync == "always" else 60)
            except AssertionError:
                if appendfsync == "always":
                    raise
                lost = len(ids - server.seen_event_ids)
            elapsed = time.monotonic() - t0
            codes = await fleet.stop()
            return {
                "events": len(ids),
                "lost": lost,
                "delivered_unique": len(ids & server.seen_event_ids),
                "duplicates_ignored": server.counts["duplicate_events_ignored"],
                "operations": server.counts["operations"],
                "killed_at": killed_at,
                "elapsed_s": round(elapsed, 2),
                "throughput_ops_s": round(len(ids) / elapsed),
                "admit_s": [float(h["admit_s"]) for h in headers],
                "producer_codes": [p.returncode for p in fleet.producers],
                "relay_codes": codes[: len(fleet.relays)],
                "last_relay_log_tail": fleet.log(f"relay-relay-{chr(96 + relays)}.log")[-600:],
            }
    finally:
        redis.cleanup()


def main() -> None:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--no-kill", action="store_true", help="kill no relay")
    parser.add_argument("--crash-redis", action="store_true", help="SIGKILL redis instead")
    parser.add_argument("--relays", type=int, default=2)
    parser.add_argument("--producers", type=int, default=3)
    parser.add_argument("--appendfsync", default="always", choices=["always", "everysec"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        result = asyncio.run(
            run_scenario(
                args.events,
                Path(d),
                kill_relay=not args.no_kill,
                crash_redis=args.crash_redis,
                relays=args.relays,
                producers=args.producers,
                appendfsync=args.appendfsync,
            )
        )
    for k, v in result.items():
        print(f"{k}: {v}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
