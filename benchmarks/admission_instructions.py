"""Admission cost in machine instructions (callgrind), this tree against another.

``python -m benchmarks.admission_instructions [--baseline PATH] [--calls N]`` runs
``track_nowait`` and ``await track`` N and 3N times under valgrind's callgrind, in a
fresh process each, and prints the marginal instructions per call (the difference
divided by 2N, so start-up and imports cancel out). ``--baseline`` is a checkout of
the previous release (e.g. ``git worktree add /tmp/cio_main main~1``) put first on
``sys.path`` in its own runs, so both are counted in the same run on the same
machine. Nothing is sent: the client points at a closed port with an hour's linger,
and the queue is emptied every 1,000 calls as the sender would.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _child(mode: str, calls: int) -> None:
    import asyncio

    from cio_async import AsyncCustomerIO, BatchPolicy, Region

    users = [f"user-{i}" for i in range(10_000)]
    datas = [{"path": "/pricing", "n": i} for i in range(1000)]
    batch = BatchPolicy(
        linger=3600.0,
        max_batch_events=1_000_000_000,
        max_queue_events=50_000_000,
        max_queue_bytes=8_000_000_000,
        shutdown_timeout=0.0,
    )

    def drain(cio: Any) -> None:
        # Internal and guarded: the previous release names it differently.
        delivery = getattr(cio, "_delivery", None)
        if delivery is not None:
            delivery.accumulator.drain()
        else:
            cio._pipeline._queue.drain()

    async def main() -> None:
        cio = AsyncCustomerIO(
            "site", "key", region=Region.custom("http://127.0.0.1:9"), batch=batch
        )
        await cio.start()
        if mode == "nowait":
            track_nowait = cio.track_nowait
            for i in range(calls):
                track_nowait(users[i % 10_000], "Viewed Pricing", datas[i % 1000])
                if i % 1000 == 999:
                    drain(cio)
        else:
            track = cio.track
            for i in range(calls):
                await track(users[i % 10_000], "Viewed Pricing", datas[i % 1000])
                if i % 1000 == 999:
                    drain(cio)
        drain(cio)
        await cio.aclose(timeout=0)

    asyncio.run(main())


def _count(mode: str, calls: int, path: str | None) -> int:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is not installed")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (path, ROOT) if p)
    env["PYTHONHASHSEED"] = "0"  # dict layouts, and so the count, repeat run to run
    cmd = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable]
    # -P: no current directory first on sys.path, so a baseline on PYTHONPATH is the
    # cio_async imported (with -m the cwd would shadow it).
    cmd += ["-P", "-m", "benchmarks.admission_instructions", "--child", mode, str(calls)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    found = re.search(r"Collected : (\d+)", out.stderr)
    if out.returncode or not found:
        raise SystemExit(out.stderr[-2000:])
    return int(found.group(1))


def measure(calls: int, baseline: str | None) -> dict[str, Any]:
    """Marginal instructions per admission, for this tree and (optionally) a baseline."""
    result: dict[str, Any] = {}
    for label, path in (("this", None), ("baseline", baseline)):
        if label == "baseline" and not path:
            continue
        for mode in ("nowait", "await"):
            small = _count(mode, calls, path)
            large = _count(mode, 3 * calls, path)
            result[f"{label}_{mode}"] = (large - small) / (2 * calls)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", help="a checkout of the previous release")
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child[0], int(args.child[1]))
        return 0
    print(json.dumps(measure(args.calls, args.baseline), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
