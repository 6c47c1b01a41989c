"""Workload 5: an aiohttp web handler that tracks one event per request, under load
from another process.

``python -m benchmarks.webload serve MODE < standin.json`` runs the app (printing
``listening on URL``); ``python -m benchmarks.webload load URL ...`` is the fallback
load generator when ``wrk`` is not installed. The handler's latency is what the load
generator sees, so tracking shows up as the latency it adds to every request.

Modes: ``off`` (no tracking), ``cio_async`` (``await cio.track(...)``: queued, returns
at once), ``cdp`` (``client.track``: a queue put), ``async_customerio`` (``await
client.track``: one request per page view, inline) and ``customerio`` (the blocking
client on a 25-thread executor, the usual way to call blocking code from a handler).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ._util import quantile
from .peers import EVENT_NAME, PEERS

MODES = ("off", "cio_async", "cdp", "async_customerio", "customerio")


async def serve(mode: str, standin: dict[str, Any], port: int = 0) -> None:
    from aiohttp import web

    track: Callable[[str, int], Awaitable[None]]
    close: Callable[[], Awaitable[Any]]
    if mode == "off":

        async def track(user: str, n: int) -> None:
            return None

        async def close() -> None:
            return None

    elif mode == "cio_async":
        cio = PEERS["cio_async"](standin).client()  # type: ignore[attr-defined]
        await cio.start()

        async def track(user: str, n: int) -> None:
            await cio.track(user, EVENT_NAME, {"path": "/pricing", "n": n})

        close = cio.aclose
    elif mode == "cdp":
        client = PEERS["cdp"](standin).client()  # type: ignore[attr-defined]

        async def track(user: str, n: int) -> None:
            client.track(user, EVENT_NAME, {"path": "/pricing", "n": n})

        async def close() -> None:
            await asyncio.to_thread(client.flush)

    elif mode == "async_customerio":
        ac = PEERS["async_customerio"](standin).client()  # type: ignore[attr-defined]

        async def track(user: str, n: int) -> None:
            await ac.track(user, EVENT_NAME, path="/pricing", n=n)

        close = ac.close
    elif mode == "customerio":
        blocking = PEERS["customerio"](standin).client()  # type: ignore[attr-defined]
        pool = ThreadPoolExecutor(25)
        loop = asyncio.get_running_loop()

        async def track(user: str, n: int) -> None:
            await loop.run_in_executor(
                pool, blocking.track, user, EVENT_NAME, {"path": "/pricing", "n": n}
            )

        async def close() -> None:
            pool.shutdown(wait=True)

    else:
        raise SystemExit(f"unknown mode {mode!r}")

    counter = itertools.count()
    errors = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal errors
        n = next(counter)
        try:
            await track(f"user-{n % 10_000}", n)
        except Exception:
            errors += 1  # a tracking failure must not fail the page
        return web.json_response({"ok": True, "n": n})

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=1024)
    await site.start()
    sockets = getattr(site._server, "sockets", None) or []
    print(f"listening on http://127.0.0.1:{sockets[0].getsockname()[1]}/", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(close(), 30)
    print(f"served {next(counter)} errors {errors}", flush=True)


async def load(url: str, connections: int, duration: float, max_requests: int) -> dict[str, Any]:
    """A closed-loop load generator: ``connections`` keep-alive clients, each sending
    the next request when the last one is answered, for ``duration`` seconds (and at
    most ``max_requests`` in all)."""
    import aiohttp

    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + duration
    budget = itertools.count()
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client() -> None:
            nonlocal errors
            while time.monotonic() < deadline and next(budget) < max_requests:
                t0 = time.perf_counter()
                try:
                    async with session.get(url) as resp:
                        await resp.read()
                        ok = resp.status == 200
                except aiohttp.ClientError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(connections)))
        elapsed = time.perf_counter() - t0
    return {
        "tool": "python",
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed,
        "p50_ms": quantile(latencies, 0.5) * 1000,
        "p99_ms": quantile(latencies, 0.99) * 1000,
    }


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(output: str) -> dict[str, Any]:
    """p50/p99 and requests/s from ``wrk --latency`` output."""
    pct = dict(re.findall(r"^\s+(\d+)%\s+(\S+)\s*$", output, re.M))
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    return {
        "tool": "wrk",
        "requests": int(total.group(1)) if total else 0,
        "errors": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
        "rps": float(rps.group(1)) if rps else 0.0,
        "p50_ms": _ms(pct["50"]),
        "p99_ms": _ms(pct["99"]),
    }


def run_load(
    url: str, connections: int, duration: float, prefer_wrk: bool = True
) -> dict[str, Any]:
    """Load ``url`` from another process: ``wrk`` if installed, else the Python one."""
    timeout = duration + 60
    if prefer_wrk and shutil.which("wrk"):
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(duration))}s",
                "--latency",
                "--timeout",
                "10s",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return parse_wrk(out.stdout)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.webload",
            "load",
            url,
            "--connections",
            str(connections),
            "--duration",
            str(duration),
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.webload")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve")
    s.add_argument("mode", choices=MODES)
    s.add_argument("--port", type=int, default=0)
    ld = sub.add_parser("load")
    ld.add_argument("url")
    ld.add_argument("--connections", type=int, default=32)
    ld.add_argument("--duration", type=float, default=5.0)
    ld.add_argument("--max-requests", type=int, default=2_000_000)
    args = parser.parse_args(argv)
    if args.command == "serve":
        from .peers import _quiet

        _quiet()
        standin = json.loads(sys.stdin.readline())
        asyncio.run(serve(args.mode, standin, args.port))
        return 0
    result = asyncio.run(load(args.url, args.connections, args.duration, args.max_requests))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
