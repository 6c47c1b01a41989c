"""Scale-out benchmarks on a real redis-server (Debian's) and the stand-in process.

    python -m benchmarks.redis_fleet                    # admission + relays 1,2,4
    python -m benchmarks.redis_fleet --events 50000 --relays 1,2 --save

1. Admission cost to the stream: one producer process calls ``await cio.track(...)``
   N times with ``AsyncCustomerIO(stream=RedisStreamTarget(...))``; we report the
   caller's cost per call (admission only: validate, encode, queue in memory), then
   the cost per event of getting everything into Redis (the sender's pipelined,
   batched XADD script), wall and CPU, beside the same client sending to the
   stand-in (the in-memory default).
2. Relay throughput: the stream is preloaded with N events, then K ``cio-async
   relay`` processes drain it into the stand-in (its own process, TLS, lean counting,
   no RTT unless --rtt); events/s from the first delivered event to the last.

On a 2-core machine K relays share 2 cores with the stand-in and redis-server, so
more relays cannot mean more CPU; the numbers say what the fleet mechanics cost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._util import StandInProcess, machine_info

ROOT = Path(__file__).resolve().parent.parent

_ADMIT = r"""
import asyncio, json, sys, time, ssl
from cio_async import AsyncCustomerIO, BatchPolicy, Region
from cio_async.redis import RedisStreamTarget

async def main():
    url, redis_url, n, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    target = RedisStreamTarget(redis_url) if mode == "stream" else None
    policy = BatchPolicy(max_queue_events=n + 1, max_batch_events=500)
    async with AsyncCustomerIO("stand-in-site", "stand-in-track-key",
                               region=Region.custom(url, url), batch=policy,
                               stream=target) as c:
        await c.track("warm", "up", {"i": 0})
        await c.flush(60)
        c0, t0 = time.process_time(), time.perf_counter()
        for i in range(n):
            await c.track(f"user-{i % 5000}", "page_viewed", {"i": i, "path": "/pricing"})
        c1, t1 = time.process_time(), time.perf_counter()
        r = await c.flush(300)
        c2, t2 = time.process_time(), time.perf_counter()
    if target is not None:
        await target.aclose()
    print(json.dumps({"mode": mode, "n": n, "complete": r.complete,
                      "admit_us": (t1 - t0) / n * 1e6, "admit_cpu_us": (c1 - c0) / n * 1e6,
                      "total_us": (t2 - t0) / n * 1e6, "total_cpu_us": (c2 - c0) / n * 1e6,
                      "batches": target.batches if target else None}))

asyncio.run(main())
"""


def _env(standin: StandInProcess) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.update(
        SSL_CERT_FILE=standin.ca_path,
        CUSTOMERIO_SITE_ID=standin.site_id,
        CUSTOMERIO_TRACK_API_KEY=standin.track_api_key,
        CUSTOMERIO_TRACK_URL=standin.url,
        CUSTOMERIO_APP_URL=standin.url,
    )
    return env


def admission(
    standin: StandInProcess, redis_url: str, n: int, workdir: Path
) -> list[dict[str, Any]]:
    script = workdir / "admit.py"
    script.write_text(_ADMIT)
    out = []
    for mode in ("memory", "stream"):
        standin.configure(reset=True, lean=True)
        res = subprocess.run(
            [sys.executable, str(script), standin.url, redis_url, str(n), mode],
            env=_env(standin),
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        out.append(json.loads(res.stdout.strip().splitlines()[-1]))
    return out


async def _preload(redis_url: str, n: int) -> None:
    import redis.asyncio as aredis

    from cio_async import Person
    from cio_async.redis import StreamConfig, StreamWriter

    conn = aredis.Redis.from_url(redis_url)
    await conn.delete("cio:ops", "cio:ops:dead")
    writer = StreamWriter(conn, StreamConfig(max_len=10_000_000))
    chunk = []
    for i in range(n):
        chunk.append(Person(f"user-{i % 5000}").event("page_viewed", {"i": i}).payload)
        if len(chunk) == 1000:
            await writer.add(chunk)
            chunk = []
    await writer.add(chunk)
    await conn.aclose()


def relays(
    standin: StandInProcess, redis_url: str, n: int, k: int, workdir: Path
) -> dict[str, Any]:
    asyncio.run(_preload(redis_url, n))
    standin.configure(reset=True, lean=True)
    t0 = time.perf_counter()
    procs = []
    for r in range(k):
        log = open(workdir / f"relay-{k}-{r}.log", "wb")  # noqa: SIM115
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "cio_async",
                    "relay",
                    "--redis",
                    redis_url,
                    "--consumer",
                    f"bench-{r}",
                    "--stats-interval",
                    "0",
                    "--fleet-size",
                    str(k),
                ],
                env=_env(standin),
                stdout=log,
                stderr=log,
            )
        )
        log.close()
    done = 0
    first = None  # from the first delivered event: process start-up is not relaying
    deadline = time.monotonic() + 900
    while done < n and time.monotonic() < deadline:
        time.sleep(0.02)
        done = int(standin.state()["counts"].get("operations", 0))
        if done and first is None:
            first = time.perf_counter()
    elapsed = time.perf_counter() - (first or t0)
    for p in procs:
        p.send_signal(signal.SIGTERM)
    codes: list[int | None] = []
    for p in procs:
        try:
            codes.append(p.wait(120))
        except subprocess.TimeoutExpired:
            p.kill()
            codes.append(None)  # did not stop in time: reported, not hidden
    return {
        "relays": k,
        "events": n,
        "delivered": done,
        "seconds": round(elapsed, 2),
        "events_per_s": round(done / elapsed),
        "exit_codes": codes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000, help="events per relay run")
    parser.add_argument("--admit", type=int, default=100_000, help="events for admission")
    parser.add_argument("--relays", default="1,2,4")
    parser.add_argument("--rtt", type=float, default=0.0)
    parser.add_argument("--save", action="store_true", help="write benchmarks/REDIS_RESULTS.json")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from tests.redis_support import RedisServer

    redis = RedisServer().start()
    standin = StandInProcess(rtt=args.rtt).start()
    try:
        with tempfile.TemporaryDirectory() as d:
            adm = admission(standin, redis.url, args.admit, Path(d))
            rel = [
                relays(standin, redis.url, args.events, int(k), Path(d))
                for k in args.relays.split(",")
            ]
    finally:
        standin.stop()
        redis.cleanup()
    doc = {"machine": machine_info(), "rtt": args.rtt, "admission": adm, "relays": rel}
    print("admission (per event):")
    for a in adm:
        print(
            f"  {a['mode']:6}  caller {a['admit_us']:.2f} µs (cpu {a['admit_cpu_us']:.2f}),"
            f" until stored/sent {a['total_us']:.2f} µs (cpu {a['total_cpu_us']:.2f})"
            + (f", {a['batches']} XADD batches" if a["batches"] else "")
        )
    print("relay throughput:")
    for r in rel:
        print(
            f"  {r['relays']} relay(s): {r['events_per_s']} events/s "
            f"({r['delivered']}/{r['events']} in {r['seconds']} s)"
        )
    if args.save:
        (ROOT / "benchmarks" / "REDIS_RESULTS.json").write_text(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
