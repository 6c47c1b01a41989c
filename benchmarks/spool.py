"""The durable spool against the in-memory pipeline, in one run.

    python -m benchmarks.spool [--events 200000] [--repeats 3] [--rtt 0.05]

The stand-in runs in its own process over TLS (lean counting mode) with the given
round trip. Each measurement is a fresh worker process; memory and spool runs
alternate (paired), so machine noise hits both alike. A stream is ``--producers``
tasks each awaiting ``cio.track`` in turn (with a spool an awaited call returns once
its operation is committed, so a single awaiting task would measure the commit
interval, not the pipeline). Reported per mode: events/s, CPU per event (process
CPU, the writer thread included); for the spool also commits, their mean time,
bytes on disk per spooled event (peak of database + WAL over operations spooled) and
the latency of a lone ``await cio.track`` (p50/p99).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

from ._util import ROOT, StandInProcess, machine_info, median, quantile


def _worker(spec: dict[str, Any]) -> dict[str, Any]:
    from cio_async import AsyncCustomerIO, PoolConfig, Region

    ssl_ctx = __import__("ssl").create_default_context(cafile=spec["ca"])
    spool_dir = spec.get("spool")

    async def main() -> dict[str, Any]:
        cio = AsyncCustomerIO(
            spec["site_id"],
            spec["track_api_key"],
            region=Region.custom(spec["url"]),
            pool=PoolConfig(ssl_context=ssl_ctx),
            spool=spool_dir,
        )
        out: dict[str, Any] = {}
        async with cio:
            await cio.track("warm-up", "bench", wait=True)
            events, producers = spec["events"], spec["producers"]
            per = events // producers
            peak: tuple[int, int] = (0, 0)  # (operations spooled, bytes on disk) at the peak
            stop = False

            def disk_size() -> int:
                return sum(
                    os.path.getsize(os.path.join(spool_dir, n))
                    for n in os.listdir(spool_dir)
                    if n.endswith((".spool", ".spool-wal"))
                )

            async def sample() -> None:
                nonlocal peak
                while not stop:
                    st = cio.stats().spool
                    if st is not None and st.spooled > peak[0]:
                        peak = (st.spooled, disk_size())
                    await asyncio.sleep(0.05)

            async def produce(p: int) -> None:
                base = p * per
                for i in range(per):
                    await cio.track(f"user-{(base + i) % 1000}", "bench", {"n": base + i})

            sampler = asyncio.ensure_future(sample())
            c0, t0 = time.process_time(), time.perf_counter()
            await asyncio.gather(*(produce(p) for p in range(producers)))
            admitted = time.perf_counter() - t0
            result = await cio.flush(timeout=120)
            elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
            stop = True
            await sampler
            n = per * producers
            out.update(
                events=n,
                elapsed=elapsed,
                admit_seconds=admitted,
                cpu=cpu,
                eps=n / elapsed,
                cpu_us_per_event=cpu / n * 1e6,
                failed=result.failed + result.dropped,
                pending=result.pending,
            )
            # A lone awaited call: how long it takes to return (the commit wait).
            lat = []
            for i in range(300):
                t1 = time.perf_counter()
                await cio.track("lone", "bench", {"n": i})
                lat.append(time.perf_counter() - t1)
                await asyncio.sleep(0.002)
            out["await_p50_ms"] = quantile(lat, 0.5) * 1e3
            out["await_p99_ms"] = quantile(lat, 0.99) * 1e3
            st = cio.stats().spool
            if st is not None:
                out.update(
                    commits=st.commits,
                    commit_mean_ms=st.commit_mean * 1e3,
                    # Database + WAL size over operations spooled, at the biggest backlog
                    # seen (the WAL stays at its high-water mark between checkpoints).
                    disk_bytes_per_event=peak[1] / peak[0] if peak[0] else 0.0,
                    peak_spooled=peak[0],
                    sync_interval_ms=spec["sync_interval"] * 1e3,
                )
        return out

    return asyncio.run(main())


def _run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.spool", "--worker"],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line[7:])
            return result
    raise RuntimeError(proc.stderr[-2000:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--producers", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rtt", type=float, default=0.05)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(_worker(json.loads(sys.stdin.read()))), flush=True)
        return 0
    from cio_async._config import DEFAULT_SYNC_INTERVAL

    load = os.getloadavg()
    rows: dict[str, list[dict[str, Any]]] = {"memory": [], "spool": []}
    with StandInProcess(rtt=args.rtt) as s:
        s.configure(lean=True)
        for r in range(args.repeats):
            for mode in ("memory", "spool") if r % 2 == 0 else ("spool", "memory"):
                spec: dict[str, Any] = {
                    **s.spec(),
                    "events": args.events,
                    "producers": args.producers,
                    "sync_interval": DEFAULT_SYNC_INTERVAL,
                }
                tmp = None
                if mode == "spool":
                    tmp = tempfile.mkdtemp(prefix="cio-bench-spool-", dir=ROOT / ".venv")
                    spec["spool"] = tmp
                try:
                    res = _run_worker(spec)
                finally:
                    if tmp:
                        shutil.rmtree(tmp, ignore_errors=True)
                rows[mode].append(res)
                print(f"  {mode:<6} run {r + 1}: {res['eps']:,.0f} ev/s", file=sys.stderr)
    ratios = [sp["eps"] / m["eps"] for m, sp in zip(rows["memory"], rows["spool"], strict=True)]
    info = machine_info()

    def med(mode: str, key: str) -> float:
        return median([r[key] for r in rows[mode] if key in r])

    report = {
        "rtt_ms": args.rtt * 1e3,
        "events": args.events,
        "producers": args.producers,
        "load_average_at_start": load,
        "python": info.get("python"),
        "memory_eps": med("memory", "eps"),
        "spool_eps": med("spool", "eps"),
        "throughput_ratio_paired": median(ratios),
        "throughput_ratio_range": [min(ratios), max(ratios)],
        "memory_cpu_us_per_event": med("memory", "cpu_us_per_event"),
        "spool_cpu_us_per_event": med("spool", "cpu_us_per_event"),
        "memory_await_p50_ms": med("memory", "await_p50_ms"),
        "spool_await_p50_ms": med("spool", "await_p50_ms"),
        "spool_await_p99_ms": med("spool", "await_p99_ms"),
        "sync_interval_ms": DEFAULT_SYNC_INTERVAL * 1e3,
        "spool_commits": med("spool", "commits"),
        "spool_commit_mean_ms": med("spool", "commit_mean_ms"),
        "spool_disk_bytes_per_event": med("spool", "disk_bytes_per_event"),
        "runs": rows,
    }
    print(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
