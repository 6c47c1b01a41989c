"""In-process micro-benchmarks of cio_async's hot path (issues 3 and 4).

Nothing is sent while these run: the client points at a closed port, the linger is
an hour and the queue is huge, and each timed loop never yields to the event loop
(``track_nowait`` is synchronous and ``await track`` does not suspend while there is
room), so the sender task cannot run until the measurement is over.

Each call is timed on its own with ``perf_counter_ns``; the cost of reading the clock
twice (measured the same way) is subtracted. Medians and p99 are over all calls.
"""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from ._util import quantile, rss_bytes
from .peers import EVENT_NAME, IDENTIFY_ATTRS, USERS, _quiet

_pc = time.perf_counter_ns
# Nothing listens on port 9 (discard) on loopback: nothing could be delivered.
NOWHERE = "http://127.0.0.1:9"


def _client(**kwargs: Any) -> Any:
    from cio_async import AsyncCustomerIO, BatchPolicy, Region

    batch = BatchPolicy(
        linger=3600.0,
        max_queue_events=50_000_000,
        max_queue_bytes=8_000_000_000,
        shutdown_timeout=0.0,
    )
    return AsyncCustomerIO("site", "key", region=Region.custom(NOWHERE), batch=batch, **kwargs)


def clock_overhead_ns(n: int = 20_000) -> float:
    """Median cost of two back-to-back clock reads, subtracted from every sample."""
    samples = []
    for _ in range(n):
        t0 = _pc()
        t1 = _pc()
        samples.append(t1 - t0)
    return quantile(samples, 0.5)


def _summary(samples_ns: list[int], overhead: float) -> dict[str, float]:
    adj = [max(0.0, s - overhead) / 1000 for s in samples_ns]
    return {
        "median_us": quantile(adj, 0.5),
        "p99_us": quantile(adj, 0.99),
        "mean_us": sum(adj) / len(adj),
        "calls": len(adj),
    }


def _datas(n: int) -> list[dict[str, Any]]:
    # Built before timing; the same shape the stream workloads send.
    return [{"path": "/pricing", "n": i} for i in range(n)]


async def _time_nowait(cio: Any, n: int) -> list[int]:
    datas = _datas(1000)
    users, name = USERS, EVENT_NAME
    track = cio.track_nowait
    out = []
    for i in range(n):
        u, d = users[i % 10_000], datas[i % 1000]
        t0 = _pc()
        track(u, name, d)
        t1 = _pc()
        out.append(t1 - t0)
    return out


async def _time_await(cio: Any, n: int) -> list[int]:
    datas = _datas(1000)
    users, name = USERS, EVENT_NAME
    track = cio.track
    out = []
    for i in range(n):
        u, d = users[i % 10_000], datas[i % 1000]
        t0 = _pc()
        await track(u, name, d)
        t1 = _pc()
        out.append(t1 - t0)
    return out


async def _closed(cio: Any) -> None:
    # Everything queued is dropped ("shutdown"): nothing was meant to be sent.
    await cio.aclose(timeout=0)


def _drain(cio: Any) -> None:
    """Empty the client's queue between timed chunks, as the sender would in steady
    state, so admission is not measured against an ever-growing heap. Internal, so
    guarded: without it the chunks are only smaller."""
    delivery = getattr(cio, "_delivery", None)
    queue = delivery.accumulator if delivery is not None else None
    if queue is None:  # the previous release (the cio_async_prev peer)
        queue = getattr(getattr(cio, "_pipeline", None), "_queue", None)
    if queue is not None and hasattr(queue, "drain"):
        queue.drain()


def admission(n: int, rounds: int = 10) -> dict[str, Any]:
    """Issue 3(a): what admitting one event costs, ``track_nowait`` and ``await track``;
    and issue 4: ``track_nowait`` with a no-op ``Hooks`` attached.

    The three variants run interleaved in ``rounds`` chunks, so drift on a shared
    machine (another process, frequency changes) hits them alike."""
    from cio_async import Hooks

    class NoopHooks(Hooks):
        pass

    overhead = clock_overhead_ns()
    chunk = max(1, n // rounds)

    async def main() -> dict[str, Any]:
        variants = {
            "track_nowait": (_client(), _time_nowait),
            "await_track": (_client(), _time_await),
            "track_nowait_hooks": (_client(hooks=[NoopHooks()]), _time_nowait),
        }
        samples: dict[str, list[int]] = {k: [] for k in variants}
        for cio, timer in variants.values():
            await cio.start()
            await timer(cio, min(chunk, 2000))  # warm-up
            _drain(cio)
        for _ in range(rounds):
            for key, (cio, timer) in variants.items():
                gc.collect()
                samples[key] += await timer(cio, chunk)
                _drain(cio)
        for cio, _ in variants.values():
            await _closed(cio)
        out: dict[str, Any] = {"clock_overhead_ns": overhead}
        out.update({k: _summary(v, overhead) for k, v in samples.items()})
        return out

    return asyncio.run(main())


def dedup_hit(n: int) -> dict[str, Any]:
    """Issue 4: an identify identical to the last one for that person (a dedup hit)."""
    overhead = clock_overhead_ns()

    async def main() -> dict[str, Any]:
        cio = _client()
        await cio.start()
        people = USERS[:100]
        for p in people:  # the first identify of each person is queued, not a hit
            await cio.identify(p, IDENTIFY_ATTRS)
        identify, nowait = cio.identify, cio.identify_nowait
        hits: list[int] = []
        for i in range(n):
            p = people[i % 100]
            t0 = _pc()
            await identify(p, IDENTIFY_ATTRS)
            t1 = _pc()
            hits.append(t1 - t0)
        hits_nowait: list[int] = []
        for i in range(n):
            p = people[i % 100]
            t0 = _pc()
            nowait(p, IDENTIFY_ATTRS)
            t1 = _pc()
            hits_nowait.append(t1 - t0)
        misses: list[int] = []
        for i in range(min(n, 20_000)):
            attrs = {**IDENTIFY_ATTRS, "seats": i}
            t0 = _pc()
            await identify(people[i % 100], attrs)
            t1 = _pc()
            misses.append(t1 - t0)
        deduplicated = cio.stats().deduplicated
        await _closed(cio)
        return {
            "identify_hit": _summary(hits, overhead),
            "identify_nowait_hit": _summary(hits_nowait, overhead),
            "identify_miss": _summary(misses, overhead),
            "deduplicated": deduplicated,
        }

    return asyncio.run(main())


def recorder_overhead(n: int) -> dict[str, Any]:
    """Issue 4: what stats and hooks cost per HTTP request and per ``stats()`` read.

    The per-request bookkeeping (``request_start``/``request_end``/``batch_sent``, as the
    pipeline calls it for each batch) is timed through the client's recorder with a
    no-op ``Hooks`` attached and without; the per-operation share is that divided by
    the batch size (1000 by default)."""
    from cio_async import Hooks

    class NoopHooks(Hooks):
        pass

    overhead = clock_overhead_ns()

    def per_request(hooks: bool) -> dict[str, float] | None:
        cio = _client(hooks=[NoopHooks()] if hooks else ())
        rec = getattr(cio, "_rec", None)
        if rec is None or not hasattr(rec, "request_end"):
            return None  # internals moved; the report says n/a
        out = []
        for i in range(n):
            t0 = _pc()
            rec.request_start("batch")
            rec.request_end("batch", 200, 0.01 + (i & 7) * 0.001, None, 0)
            rec.batch_sent(1000, 150_000, 200, 0.01)
            t1 = _pc()
            out.append(t1 - t0)
        return _summary(out, overhead)

    def stats_read() -> dict[str, float]:
        cio = _client()
        rec = getattr(cio, "_rec", None)
        if rec is not None:  # a few latency histograms, as after a real run
            for op in ("batch", "identify", "track"):
                rec.request_end(op, 200, 0.05, None, 0)
        out = []
        for _ in range(max(1, n // 10)):
            t0 = _pc()
            cio.stats()
            t1 = _pc()
            out.append(t1 - t0)
        return _summary(out, overhead)

    return {
        "per_request_no_hooks": per_request(False),
        "per_request_noop_hook": per_request(True),
        "stats_call": stats_read(),
    }


def queued_memory(n: int, peer: str = "cio_async") -> dict[str, Any]:
    """Issue 3(c): memory held per queued event while nothing is sent.

    tracemalloc counts the Python allocations still alive after ``n`` admissions
    (arguments are built before the first snapshot and kept alive throughout, so
    only what the client keeps is counted); the RSS growth is reported beside it.
    """
    datas = _datas(n)
    users = [USERS[i % 10_000] for i in range(n)]
    add: Callable[[int], Any]
    finish: Callable[[], Any]
    loop: asyncio.AbstractEventLoop | None = None
    if peer == "cio_async":
        cio = _client()
        loop = asyncio.new_event_loop()
        loop.run_until_complete(cio.start())

        def add(i: int) -> Any:
            return cio.track_nowait(users[i], EVENT_NAME, datas[i])

        def finish() -> Any:
            assert loop is not None
            return loop.run_until_complete(_closed(cio))

    elif peer == "cdp":
        from customerio.analytics import Client

        # No consumer thread (thread=0), so the queue only fills. (send=False would
        # not queue at all.)
        client = Client("write-key", thread=0, max_queue_size=n + 1)
        client.consumers = []  # its atexit join() expects the attribute

        def add(i: int) -> Any:
            return client.track(users[i], EVENT_NAME, datas[i])

        def finish() -> Any:
            return None

    else:
        raise ValueError(peer)

    add(0)  # first-call allocations (caches, lazy imports) are not per event
    gc.collect()
    rss0 = rss_bytes()
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    for i in range(1, n):
        add(i)
    gc.collect()
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss1 = rss_bytes()
    finish()
    if loop is not None:
        loop.close()
    return {
        "events": n - 1,
        "bytes_per_event_tracemalloc": (current - base) / (n - 1),
        "bytes_per_event_rss": (rss1 - rss0) / (n - 1),
    }


def run(params: dict[str, Any], peer: str) -> dict[str, Any]:
    _quiet()
    if peer == "cdp":
        return {"queued_memory": queued_memory(params["memory_events"], "cdp")}
    if peer == "cio_async_prev":  # the previous release: admission, side by side
        return {"admission": admission(params["admission_calls"])}
    if peer != "cio_async":
        raise ValueError(peer)
    return {
        "admission": admission(params["admission_calls"]),
        "dedup": dedup_hit(params["dedup_calls"]),
        "recorder": recorder_overhead(params["recorder_calls"]),
        "queued_memory": queued_memory(params["memory_events"]),
    }
