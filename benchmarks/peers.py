"""Every client under test, driven the same way against the same stand-in.

Each peer implements the workloads it can run; ``NotApplicable`` carries the reason a
peer cannot run one, and the report prints that reason instead of leaving a gap.

All peers send the same person, event name and event data. Methods run inside a
worker process (``benchmarks.worker``), one measurement per process, so peak RSS and
CPU time belong to that peer alone.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, TypeVar

T = TypeVar("T")

#: The event every peer sends in the stream workloads.
EVENT_NAME = "page_viewed"
USERS = [f"user-{i}" for i in range(10_000)]
IDENTIFY_ATTRS = {"email": "ada@example.com", "plan": "pro", "seats": 3}


def event_data(i: int) -> dict[str, Any]:
    return {"path": "/pricing", "n": i}


class NotApplicable(Exception):
    """This peer cannot run this workload (the message says why)."""


def _quiet() -> None:
    # Warnings from the clients (urllib3 "pool is full", 429 pauses) would only add
    # noise and I/O to the measurement; results carry their own error counts.
    logging.getLogger().addHandler(logging.NullHandler())
    for name in ("cio_async", "urllib3", "customerio", "httpx", "backoff", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


class Peer:
    """The workloads, as a peer implements them. Times are seconds."""

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    #: How many requests/threads/tasks a peer keeps in flight where it is up to us.
    CONCURRENCY: ClassVar[int] = 25

    @property
    def burst_warmup_requests(self) -> int:
        """Requests ``burst`` sends to warm the pool, before the timed bursts."""
        return 1

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.url: str = spec["url"]
        self.host, port = self.url.split("://", 1)[1].rsplit(":", 1)
        self.port = int(port)
        self.ca: str = spec["ca"]
        self.site_id: str = spec["site_id"]
        self.key: str = spec["track_api_key"]
        self.write_key: str = spec.get("write_key", "stand-in-write-key")
        # requests reads REQUESTS_CA_BUNDLE and httpx SSL_CERT_FILE: both trust the
        # run's CA without touching the system store.
        os.environ["REQUESTS_CA_BUNDLE"] = self.ca
        os.environ["SSL_CERT_FILE"] = self.ca
        _quiet()

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca)

    # The workloads. Each returns a dict of raw measurements.
    def identify_latency(self, mode: str, calls: int) -> list[float]:
        raise NotApplicable("not implemented")

    def burst(self, events: int, bursts: int) -> list[float]:
        raise NotApplicable("not implemented")

    def stream(self, events: int, budget: float) -> dict[str, Any]:
        raise NotApplicable("not implemented")

    def identify_same(self, calls: int, budget: float) -> dict[str, Any]:
        raise NotApplicable("not implemented")

    def pipelines(self, events: int, budget: float) -> dict[str, Any]:
        raise NotApplicable("not a Pipelines API client")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def _tolerant(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A warm-up call that may meet a 429 (the rate-limited workload): ignore errors."""
    try:
        return fn(*args, **kwargs)
    except Exception:
        return None


async def _atolerant(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        return await coro
    except Exception:
        return None


def _stream_result(sent: int, failed: int, elapsed: float, cpu: float) -> dict[str, Any]:
    return {"sent": sent, "failed": failed, "elapsed": elapsed, "cpu": cpu}


# -- cio_async ---------------------------------------------------------------------------------


class CioAsync(Peer):
    name = "cio_async"
    label = "cio_async"

    def client(self, **kwargs: Any) -> Any:
        from cio_async import AsyncCustomerIO, PoolConfig, Region

        return AsyncCustomerIO(
            self.site_id,
            self.key,
            region=Region.custom(self.url),
            pool=PoolConfig(ssl_context=self.ssl_context()),
            **kwargs,
        )

    def identify_latency(self, mode: str, calls: int) -> list[float]:
        async def main() -> list[float]:
            out: list[float] = []
            if mode == "warm":
                async with self.client() as cio:
                    await cio.identify("warm-up", IDENTIFY_ATTRS, wait=True)
                    for i in range(calls):
                        t0 = time.perf_counter()
                        await cio.identify(f"p-{i}", IDENTIFY_ATTRS, wait=True)
                        out.append(time.perf_counter() - t0)
            else:
                for i in range(calls):
                    # A new client: its pool is empty, so the call opens a connection.
                    async with self.client() as cio:
                        t0 = time.perf_counter()
                        await cio.identify(f"p-{i}", IDENTIFY_ATTRS, wait=True)
                        out.append(time.perf_counter() - t0)
            return out

        return _run(main())

    def burst(self, events: int, bursts: int) -> list[float]:
        async def main() -> list[float]:
            out = []
            async with self.client() as cio:
                await cio.track("warm-up", EVENT_NAME, wait=True)
                for b in range(bursts):
                    t0 = time.perf_counter()
                    for i in range(events):
                        await cio.track(USERS[i], EVENT_NAME, event_data(b * events + i))
                    result = await cio.flush(timeout=60)
                    out.append(time.perf_counter() - t0)
                    if not result.complete or result.failed:
                        raise RuntimeError(f"burst not delivered: {result}")
            return out

        return _run(main())

    #: Batches in flight for the stream (None: the defaults, adaptive). The callgrind
    #: count sets the ceiling's 10, so both open the same connections: an adaptive
    #: limit still growing would add TLS handshakes in proportion to the run's length.
    IN_FLIGHT: int | None = None

    def stream(self, events: int, budget: float) -> dict[str, Any]:
        async def main() -> dict[str, Any]:
            from cio_async import BatchPolicy

            options = {}
            if self.IN_FLIGHT is not None:
                options["batch"] = BatchPolicy(max_in_flight=self.IN_FLIGHT)
            async with self.client(**options) as cio:
                await cio.track("warm-up", EVENT_NAME, wait=True)
                deadline = time.monotonic() + budget
                c0, t0 = time.process_time(), time.perf_counter()
                sent = await _await_each(cio.track, events, deadline)
                result = await cio.flush(timeout=max(60.0, budget))
                elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
                stats = cio.stats()
            out = _stream_result(sent, result.failed + result.dropped, elapsed, cpu)
            out.update(
                batches=stats.batches_sent,
                retried=stats.retried,
                paused_seconds=stats.paused_seconds,
                pending=result.pending,
            )
            return out

        return _run(main())

    def identify_same(self, calls: int, budget: float) -> dict[str, Any]:
        async def main() -> dict[str, Any]:
            async with self.client() as cio:
                deadline = time.monotonic() + budget
                t0 = time.perf_counter()
                made = 0
                for _ in range(calls):
                    await cio.identify("42", IDENTIFY_ATTRS)
                    made += 1
                    if time.monotonic() > deadline:
                        break
                await cio.flush(timeout=30)
                elapsed = time.perf_counter() - t0
                return {"calls": made, "elapsed": elapsed, "deduplicated": cio.stats().deduplicated}

        return _run(main())


class CioAsyncPrevious(CioAsync):
    """The previous release's cio_async, run side by side with this tree's: the worker
    puts the checkout named by ``CIO_BENCH_BASELINE`` (e.g. a ``git worktree`` of the
    previous commit; ``scripts/bench --baseline REF`` makes one) first on ``sys.path``."""

    name = "cio_async_prev"
    label = "cio_async (previous release)"


# -- the hand-written ceiling -------------------------------------------------------------------

#: A random 10-character prefix per run: with a 16-digit counter, a unique 26-character
#: event id, as a hand-written loop would make one.
_RUN_PREFIX = "".join("0123456789ABCDEFGHJKMNPQRSTVWXYZ"[b % 32] for b in os.urandom(10))


class Ceiling(Peer):
    """aiohttp + orjson, by hand: build v2 operations, join them into batches of the same
    size cio_async uses (1000), post 10 at a time on one pooled session. No validation,
    no stats, no retries beyond honouring a 429's Retry-After. The events carry the same
    fields as cio_async's, each with a unique 26-character id and a Unix timestamp, made
    the way a hand-written loop would make them cheaply: a random prefix per run plus a
    counter, and the clock read once per batch (not with cio_async's generator). The
    most a Python client on aiohttp can do, so it is the throughput ceiling."""

    name = "ceiling"
    label = "aiohttp+orjson loop (ceiling)"
    BATCH = 1000
    IN_FLIGHT = 10

    def _session(self, **connector: Any) -> Any:
        import aiohttp

        conn = aiohttp.TCPConnector(limit=25, ssl=self.ssl_context(), **connector)
        return aiohttp.ClientSession(connector=conn)

    def _headers(self) -> dict[str, str]:
        import base64

        auth = base64.b64encode(f"{self.site_id}:{self.key}".encode()).decode()
        return {"Authorization": f"Basic {auth}", "Content-Type": "application/json"}

    async def _post(self, session: Any, body: bytes, headers: dict[str, str]) -> int:
        """Post one batch; on 429 wait Retry-After and resend (bounded). Returns the
        number of 429s seen; raises on any other failure."""
        limited = 0
        for _ in range(1000):
            async with session.post(f"{self.url}/api/v2/batch", data=body, headers=headers) as r:
                await r.read()
                if r.status == 429:
                    limited += 1
                    await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
                    continue
                if r.status != 200:
                    raise RuntimeError(f"batch answered {r.status}")
                return limited
        raise RuntimeError("gave up after 1000 rate-limited attempts")

    def _warm_up_op(self) -> dict[str, Any]:
        return self._op(_RUN_PREFIX, 0, "w", int(time.time()), {})

    def _op(self, prefix: str, i: int, user: str, ts: int, data: dict[str, Any]) -> dict[str, Any]:
        # The same fields cio_async sends; the id is the run's prefix and a counter.
        return {
            "type": "person",
            "action": "event",
            "identifiers": {"id": user},
            "name": EVENT_NAME,
            "id": f"{prefix}{i:016d}",
            "timestamp": ts,
            "attributes": data,
        }

    def identify_latency(self, mode: str, calls: int) -> list[float]:
        import orjson

        async def one(session: Any, i: int) -> float:
            op = {
                "type": "person",
                "action": "identify",
                "identifiers": {"id": f"p-{i}"},
                "timestamp": int(time.time()),
                "attributes": IDENTIFY_ATTRS,
            }
            t0 = time.perf_counter()
            await self._post(session, orjson.dumps({"batch": [op]}), self._headers())
            return time.perf_counter() - t0

        async def main() -> list[float]:
            if mode == "warm":
                async with self._session() as session:
                    await one(session, -1)
                    return [await one(session, i) for i in range(calls)]
            out = []
            for i in range(calls):
                async with self._session() as session:
                    out.append(await one(session, i))
            return out

        return _run(main())

    def burst(self, events: int, bursts: int) -> list[float]:
        import orjson

        async def main() -> list[float]:
            out = []
            headers = self._headers()
            async with self._session() as session:
                await self._post(session, orjson.dumps({"batch": [self._warm_up_op()]}), headers)
                for b in range(bursts):
                    t0 = time.perf_counter()
                    ts = int(time.time())
                    ops = [
                        self._op(_RUN_PREFIX, 1 + b * events + i, USERS[i], ts, event_data(i))
                        for i in range(events)
                    ]
                    await self._post(session, orjson.dumps({"batch": ops}), headers)
                    out.append(time.perf_counter() - t0)
            return out

        return _run(main())

    def stream(self, events: int, budget: float) -> dict[str, Any]:
        import orjson

        dumps = orjson.dumps
        prefix = _RUN_PREFIX

        async def main() -> dict[str, Any]:
            headers = self._headers()
            async with self._session() as session:
                await self._post(session, dumps({"batch": [self._warm_up_op()]}), headers)
                queue: asyncio.Queue[bytes | None] = asyncio.Queue(self.IN_FLIGHT)
                limited = 0

                async def sender() -> None:
                    nonlocal limited
                    while (body := await queue.get()) is not None:
                        limited += await self._post(session, body, headers)

                deadline = time.monotonic() + budget
                c0, t0 = time.process_time(), time.perf_counter()
                senders = [asyncio.ensure_future(sender()) for _ in range(self.IN_FLIGHT)]
                users, nu, op = USERS, len(USERS), self._op
                sent = 0
                while sent < events and time.monotonic() < deadline:
                    n = min(self.BATCH, events - sent)
                    ts = int(time.time())
                    body = dumps(
                        {
                            "batch": [
                                op(prefix, i, users[i % nu], ts, {"path": "/pricing", "n": i})
                                for i in range(sent + 1, sent + n + 1)
                            ]
                        }
                    )
                    await queue.put(body)
                    sent += n
                for _ in senders:
                    await queue.put(None)
                await asyncio.gather(*senders)
                elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
            out = _stream_result(sent, 0, elapsed, cpu)
            out["rate_limited_seen"] = limited
            return out

        return _run(main())

    def identify_same(self, calls: int, budget: float) -> dict[str, Any]:
        raise NotApplicable("a hand-written loop sends what it is given (no dedup)")


# -- customerio (official, synchronous) -----------------------------------------------------------


class CustomerIOSerial(Peer):
    """The official ``customerio`` package: one blocking v1 request per call."""

    name = "customerio"
    label = "customerio (serial)"

    def client(self, pooled: bool = True) -> Any:
        from customerio import CustomerIO

        return CustomerIO(
            self.site_id,
            self.key,
            host=self.host,
            port=self.port,
            use_connection_pooling=pooled,
        )

    def identify_latency(self, mode: str, calls: int) -> list[float]:
        cio = self.client(pooled=mode == "warm")
        cio.identify("warm-up", **IDENTIFY_ATTRS)
        out = []
        for i in range(calls):
            t0 = time.perf_counter()
            cio.identify(f"p-{i}", **IDENTIFY_ATTRS)
            out.append(time.perf_counter() - t0)
        cio.close()
        return out

    def _track_many(self, cio: Any, items: list[int], deadline: float | None) -> tuple[int, int]:
        sent = failed = 0
        users, nu = USERS, len(USERS)
        for i in items:
            if deadline is not None and time.monotonic() > deadline:
                break
            try:
                cio.track(users[i % nu], EVENT_NAME, event_data(i))
            except Exception:
                failed += 1
            sent += 1
        return sent, failed

    def _send_many(self, cio: Any, items: list[int], deadline: float | None) -> tuple[int, int]:
        """How this peer sends a list of events: serially here, on threads below."""
        return self._track_many(cio, items, deadline)

    def _warm(self, cio: Any) -> None:
        cio.track("warm-up", EVENT_NAME)

    def burst(self, events: int, bursts: int) -> list[float]:
        cio = self.client()
        self._warm(cio)
        out = []
        for _ in range(bursts):
            t0 = time.perf_counter()
            _, failed = self._send_many(cio, list(range(events)), None)
            out.append(time.perf_counter() - t0)
            if failed:
                raise RuntimeError(f"{failed} events failed")
        return out

    def stream(self, events: int, budget: float) -> dict[str, Any]:
        cio = self.client()
        _tolerant(cio.track, "warm-up", EVENT_NAME)
        deadline = time.monotonic() + budget
        c0, t0 = time.process_time(), time.perf_counter()
        sent, failed = self._send_many(cio, list(range(events)), deadline)
        return _stream_result(sent, failed, time.perf_counter() - t0, time.process_time() - c0)

    def identify_same(self, calls: int, budget: float) -> dict[str, Any]:
        cio = self.client()
        deadline = time.monotonic() + budget
        t0 = time.perf_counter()
        made = 0
        for _ in range(calls):
            cio.identify("42", **IDENTIFY_ATTRS)
            made += 1
            if time.monotonic() > deadline:
                break
        return {"calls": made, "elapsed": time.perf_counter() - t0}


class CustomerIOThreads(CustomerIOSerial):
    """The official package on a 25-thread pool sharing one client (its session)."""

    name = "customerio_t25"
    label = "customerio (25 threads)"

    @property
    def burst_warmup_requests(self) -> int:
        return self.CONCURRENCY

    def identify_latency(self, mode: str, calls: int) -> list[float]:
        raise NotApplicable("one call uses one thread: same as serial")

    def _send_many(self, cio: Any, items: list[int], deadline: float | None) -> tuple[int, int]:
        chunks = [items[k :: self.CONCURRENCY] for k in range(self.CONCURRENCY)]
        with ThreadPoolExecutor(self.CONCURRENCY) as pool:
            results = list(pool.map(lambda c: self._track_many(cio, c, deadline), chunks))
        return sum(r[0] for r in results), sum(r[1] for r in results)

    def _warm(self, cio: Any) -> None:
        self._send_many(cio, list(range(self.CONCURRENCY)), None)  # warm the pool

    def identify_same(self, calls: int, budget: float) -> dict[str, Any]:
        cio = self.client()
        deadline = time.monotonic() + budget

        def run(n: int) -> int:
            made = 0
            for _ in range(n):
                if time.monotonic() > deadline:
                    break
                cio.identify("42", **IDENTIFY_ATTRS)
                made += 1
            return made

        t0 = time.perf_counter()
        share = [
            calls // self.CONCURRENCY + (k < calls % self.CONCURRENCY)
            for k in range(self.CONCURRENCY)
        ]
        with ThreadPoolExecutor(self.CONCURRENCY) as pool:
            made = sum(pool.map(run, share))
        return {"calls": made, "elapsed": time.perf_counter() - t0}


# -- customerio-cdp-analytics (queue + consumer thread, Pipelines API) ---------------------------


class CDPAnalytics(Peer):
    """``customerio-cdp-analytics``: a bounded queue and one consumer thread posting
    batches of 100 to the Pipelines ``/v1/batch`` (the stand-in's CDP endpoint)."""

    name = "cdp"
    label = "customerio-cdp-analytics"

    def client(self, **kwargs: Any) -> Any:
        from customerio.analytics import Client

        self.errors: list[BaseException] = []
        return Client(
            self.write_key,
            host=self.url,
            on_error=lambda exc, batch: self.errors.append(exc),
            **kwargs,
        )

    def identify_latency(self, mode: str, calls: int) -> list[float]:
        if mode != "warm":
            raise NotApplicable("one module-global requests session; no per-call connection")
        client = self.client()
        client.identify("warm-up", IDENTIFY_ATTRS)
        client.flush()
        out = []
        for i in range(calls):
            t0 = time.perf_counter()
            client.identify(f"p-{i}", IDENTIFY_ATTRS)
            client.flush()  # queue.join(): the consumer waits up to upload_interval
            out.append(time.perf_counter() - t0)
        client.join()
        return out

    @staticmethod
    def _drain(client: Any, timeout: float) -> bool:
        """``client.flush()`` (``queue.join()``) with a deadline: under a rate limit its
        retries back off for minutes, and every load loop here must stay bounded."""
        deadline = time.monotonic() + timeout
        while client.queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)
        return not client.queue.unfinished_tasks

    def _enqueue(self, client: Any, fn: Callable[..., Any], *args: Any) -> None:
        # The queue drops the newest message when full (10,000 by default); back off
        # instead so every peer delivers the same events.
        while not fn(*args)[0]:
            time.sleep(0.001)

    def burst(self, events: int, bursts: int) -> list[float]:
        client = self.client()
        client.track("warm-up", EVENT_NAME)
        client.flush()
        out = []
        for b in range(bursts):
            t0 = time.perf_counter()
            for i in range(events):
                self._enqueue(client, client.track, USERS[i], EVENT_NAME, event_data(b + i))
            client.flush()
            out.append(time.perf_counter() - t0)
        client.join()
        if self.errors:
            raise RuntimeError(f"errors: {self.errors[:3]}")
        return out

    def stream(self, events: int, budget: float) -> dict[str, Any]:
        client = self.client()
        client.track("warm-up", EVENT_NAME)
        self._drain(client, 10)
        deadline = time.monotonic() + budget
        users, nu = USERS, len(USERS)
        c0, t0 = time.process_time(), time.perf_counter()
        sent = 0
        for i in range(events):
            if not i & 255 and time.monotonic() > deadline:
                break
            self._enqueue(client, client.track, users[i % nu], EVENT_NAME, event_data(i))
            sent += 1
        drained = self._drain(client, budget + 30)
        out = _stream_result(
            sent, len(self.errors), time.perf_counter() - t0, time.process_time() - c0
        )
        out["drained"] = drained
        return out

    def identify_same(self, calls: int, budget: float) -> dict[str, Any]:
        client = self.client()
        deadline = time.monotonic() + budget
        t0 = time.perf_counter()
        made = 0
        for _ in range(calls):
            self._enqueue(client, client.identify, "42", IDENTIFY_ATTRS)
            made += 1
            if time.monotonic() > deadline:
                break
        client.flush()
        elapsed = time.perf_counter() - t0
        client.join()
        return {"calls": made, "elapsed": elapsed}


# -- async-customerio (httpx, one request per call) --------------------------------------------


class AsyncCustomerIOPeer(Peer):
    """``async-customerio``: one httpx request per call, gathered with bounded
    concurrency. 20, its default keep-alive cap: with 25 in flight (cio_async's pool
    size) httpx closes the connections beyond 20 as they come back and reopens them,
    which measured ~650 TLS handshakes per ~780 requests and mostly timed handshakes."""

    name = "async_customerio"
    label = "async-customerio (gather, 20)"
    CONCURRENCY = 20

    @property
    def burst_warmup_requests(self) -> int:
        return self.CONCURRENCY

    def client(self) -> Any:
        import httpx
        from async_customerio import AsyncCustomerIO

        client = AsyncCustomerIO(self.site_id, self.key, host=self.host, port=self.port)
        ctx = self.ssl_context()
        original = client._create_client

        def create() -> Any:
            # Keep its timeouts and limits; only trust the run's CA explicitly.
            made = original()
            limits = httpx.Limits(**client._request_limits.__dict__)
            transport = httpx.AsyncHTTPTransport(limits=limits, verify=ctx)
            return httpx.AsyncClient(timeout=made.timeout, transport=transport)

        client._create_client = create
        return client

    def identify_latency(self, mode: str, calls: int) -> list[float]:
        async def main() -> list[float]:
            out = []
            if mode == "warm":
                client = self.client()
                await client.identify("warm-up", **IDENTIFY_ATTRS)
                for i in range(calls):
                    t0 = time.perf_counter()
                    await client.identify(f"p-{i}", **IDENTIFY_ATTRS)
                    out.append(time.perf_counter() - t0)
                await client.close()
            else:
                for i in range(calls):
                    client = self.client()
                    t0 = time.perf_counter()
                    await client.identify(f"p-{i}", **IDENTIFY_ATTRS)
                    out.append(time.perf_counter() - t0)
                    await client.close()
            return out

        return _run(main())

    async def _gather(
        self, fn: Callable[[int], Coroutine[Any, Any, Any]], items: range, deadline: float | None
    ) -> tuple[int, int]:
        """Run ``fn(i)`` for each item with at most CONCURRENCY in flight."""
        it = iter(items)
        sent = failed = 0

        async def worker() -> None:
            nonlocal sent, failed
            for i in it:
                if deadline is not None and time.monotonic() > deadline:
                    return
                sent += 1
                try:
                    await fn(i)
                except Exception:
                    failed += 1

        await asyncio.gather(*(worker() for _ in range(self.CONCURRENCY)))
        return sent, failed

    def _track(self, client: Any) -> Callable[[int], Coroutine[Any, Any, Any]]:
        users, nu = USERS, len(USERS)

        def call(i: int) -> Coroutine[Any, Any, Any]:
            return client.track(users[i % nu], EVENT_NAME, **event_data(i))  # type: ignore[no-any-return]

        return call

    def burst(self, events: int, bursts: int) -> list[float]:
        async def main() -> list[float]:
            client = self.client()
            await self._gather(self._track(client), range(self.CONCURRENCY), None)
            out = []
            for _ in range(bursts):
                t0 = time.perf_counter()
                _, failed = await self._gather(self._track(client), range(events), None)
                out.append(time.perf_counter() - t0)
                if failed:
                    raise RuntimeError(f"{failed} events failed")
            await client.close()
            return out

        return _run(main())

    def stream(self, events: int, budget: float) -> dict[str, Any]:
        async def main() -> dict[str, Any]:
            client = self.client()
            await _atolerant(client.track("warm-up", EVENT_NAME))
            deadline = time.monotonic() + budget
            c0, t0 = time.process_time(), time.perf_counter()
            sent, failed = await self._gather(self._track(client), range(events), deadline)
            out = _stream_result(sent, failed, time.perf_counter() - t0, time.process_time() - c0)
            await client.close()
            return out

        return _run(main())

    def identify_same(self, calls: int, budget: float) -> dict[str, Any]:
        async def main() -> dict[str, Any]:
            client = self.client()
            deadline = time.monotonic() + budget
            t0 = time.perf_counter()
            made, _ = await self._gather(
                lambda i: client.identify("42", **IDENTIFY_ATTRS), range(calls), deadline
            )
            elapsed = time.perf_counter() - t0
            await client.close()
            return {"calls": made, "elapsed": elapsed}

        return _run(main())


class AsyncCustomerIOBatch(AsyncCustomerIOPeer):
    """``async-customerio``'s explicit ``v2.send_batch`` with caller-built batches of
    1000 operations, 8 in flight: what its users can hand-write for throughput."""

    name = "async_customerio_batch"
    label = "async-customerio v2.send_batch (caller-built)"

    @property
    def burst_warmup_requests(self) -> int:
        return 1

    def identify_latency(self, mode: str, calls: int) -> list[float]:
        raise NotApplicable("same request as async-customerio's own identify")

    def identify_same(self, calls: int, budget: float) -> dict[str, Any]:
        raise NotApplicable("no dedup; same as async-customerio")

    def _ops(self, start: int, n: int) -> list[dict[str, Any]]:
        users, nu = USERS, len(USERS)
        return [
            {
                "type": "person",
                "action": "event",
                "identifiers": {"id": users[i % nu]},
                "name": EVENT_NAME,
                "attributes": event_data(i),
            }
            for i in range(start, start + n)
        ]

    def burst(self, events: int, bursts: int) -> list[float]:
        async def main() -> list[float]:
            client = self.client()
            await client.v2.send_batch(self._ops(0, 1))
            out = []
            for _ in range(bursts):
                t0 = time.perf_counter()
                await client.v2.send_batch(self._ops(0, events))
                out.append(time.perf_counter() - t0)
            await client.close()
            return out

        return _run(main())

    def stream(self, events: int, budget: float) -> dict[str, Any]:
        batch, in_flight = Ceiling.BATCH, Ceiling.IN_FLIGHT

        async def main() -> dict[str, Any]:
            client = self.client()
            await _atolerant(client.v2.send_batch(self._ops(0, 1)))
            deadline = time.monotonic() + budget
            c0, t0 = time.process_time(), time.perf_counter()
            starts = iter(range(0, events, batch))
            sent = failed = 0

            async def worker() -> None:
                nonlocal sent, failed
                for start in starts:
                    if time.monotonic() > deadline:
                        return
                    n = min(batch, events - start)
                    sent += n
                    try:
                        await client.v2.send_batch(self._ops(start, n))
                    except Exception:
                        failed += n

            await asyncio.gather(*(worker() for _ in range(in_flight)))
            out = _stream_result(sent, failed, time.perf_counter() - t0, time.process_time() - c0)
            await client.close()
            return out

        return _run(main())


# -- the Pipelines API (issue 14) ---------------------------------------------------------------
#
# Three clients post the same Segment-style track calls to the stand-in's ``/v1/batch``:
# cio_async's AsyncPipelines (defaults), customerio-cdp-analytics (defaults: a
# 10,000-message queue that drops the newest when full, one consumer thread, batches of
# 100) and a hand-written aiohttp + orjson loop. Each ``pipelines()`` returns what it
# sent, what it dropped itself, elapsed and CPU time, and the admission cost (µs per
# call while producing: the time a web handler would pay).


async def _await_each(track: Callable[..., Awaitable[Any]], events: int, deadline: float) -> int:
    """``await track(user, name, data)`` for up to ``events`` events before ``deadline``;
    returns how many. The deadline is checked per chunk (as the ceiling checks it per
    batch), so the loop adds nothing per event but the call."""
    users, name, nu = USERS, EVENT_NAME, len(USERS)
    sent = 0
    while sent < events and time.monotonic() < deadline:
        end = min(events, sent + 4096)
        for i in range(sent, end):
            await track(users[i % nu], name, {"path": "/pricing", "n": i})
        sent = end
    return sent


def _admission_us(produce_s: float, calls: int) -> float:
    return produce_s / max(1, calls) * 1e6


class CioAsyncPipelines(Peer):
    """cio_async's ``AsyncPipelines`` with its defaults, driven with ``await cdp.track``."""

    name = "cio_async_pipelines"
    label = "cio_async AsyncPipelines"
    GZIP = False
    #: ``BatchPolicy`` overrides (none: the defaults, adaptive concurrency).
    BATCH: ClassVar[dict[str, Any]] = {}

    def pipelines(self, events: int, budget: float) -> dict[str, Any]:
        from cio_async import AsyncPipelines, BatchPolicy, PoolConfig

        async def main() -> dict[str, Any]:
            async with AsyncPipelines(
                self.write_key,
                url=self.url + "/v1",
                pool=PoolConfig(ssl_context=self.ssl_context()),
                gzip=self.GZIP,
                batch=BatchPolicy(**self.BATCH),
            ) as cdp:
                await cdp.track("warm-up", EVENT_NAME, wait=True)
                deadline = time.monotonic() + budget
                c0, t0 = time.process_time(), time.perf_counter()
                sent = await _await_each(cdp.track, events, deadline)
                produced = time.perf_counter() - t0
                result = await cdp.flush(timeout=max(60.0, budget))
                elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
                stats = cdp.stats()
            out = _stream_result(sent, result.failed, elapsed, cpu)
            out.update(
                dropped=result.dropped,
                pending=result.pending,
                batches=stats.batches_sent,
                admission_us=_admission_us(produced, sent),
            )
            return out

        return _run(main())


class CioAsyncPipelinesGzip(CioAsyncPipelines):
    """The same with ``gzip=True`` (level 1; bodies over 64 KB compressed on a thread)."""

    name = "cio_async_pipelines_gzip"
    label = "cio_async AsyncPipelines, gzip"
    GZIP = True


class CioAsyncPipelinesFixed8(CioAsyncPipelines):
    """The same with a fixed 8 batches in flight (the loop's number) instead of the
    adaptive limit: shows what the adaptive limit costs or gains here."""

    name = "cio_async_pipelines_fixed8"
    label = "cio_async AsyncPipelines, 8 in flight"
    BATCH: ClassVar[dict[str, Any]] = {"max_in_flight": 8}


class CDPDefaults(CDPAnalytics):
    """``customerio-cdp-analytics`` exactly as configured by default: its producer is
    never held back, so a full queue drops calls (``track`` returns False)."""

    name = "cdp_defaults"
    label = "customerio-cdp-analytics (defaults)"

    def pipelines(self, events: int, budget: float) -> dict[str, Any]:
        client = self.client()
        client.track("warm-up", EVENT_NAME)
        self._drain(client, 10)
        users, nu = USERS, len(USERS)
        deadline = time.monotonic() + budget
        c0, t0 = time.process_time(), time.perf_counter()
        dropped = sent = 0
        while sent < events and time.monotonic() < deadline:
            end = min(events, sent + 4096)
            for i in range(sent, end):
                ok, _ = client.track(users[i % nu], EVENT_NAME, event_data(i))
                if not ok:
                    dropped += 1
            sent = end
        produced = time.perf_counter() - t0
        drained = self._drain(client, budget + 30)
        out = _stream_result(
            sent, len(self.errors), time.perf_counter() - t0, time.process_time() - c0
        )
        out.update(dropped=dropped, drained=drained, admission_us=_admission_us(produced, sent))
        return out


class PipelinesLoop(Peer):
    """aiohttp + orjson by hand, posting the same bytes cio_async posts: the same
    Segment-style track calls (type, userId, event, properties, context.library, a
    ULID messageId from the same generator, an ISO-8601 millisecond timestamp) in
    ``{"batch":[...],"sentAt":...}`` bodies cut as cio_async cuts them (1000 calls or
    475,000 bytes), ``X-Strict-Mode: 1``, 8 in flight on one pooled session. No
    validation, stats or retries: the throughput ceiling for this API."""

    name = "pipelines_loop"
    label = "aiohttp+orjson loop (Pipelines)"
    IN_FLIGHT = 8
    BATCH = 1000
    MAX_BYTES = 475_000

    def pipelines(self, events: int, budget: float) -> dict[str, Any]:
        import base64

        import aiohttp
        import orjson

        from cio_async import __version__
        from cio_async._encode import new_event_id

        dumps = orjson.dumps
        context = {"library": {"name": "cio_async", "version": __version__}}
        auth = base64.b64encode(f"{self.write_key}:".encode()).decode()
        headers = {
            "Authorization": f"Basic {auth}",
            "Content-Type": "application/json",
            "X-Strict-Mode": "1",
        }
        url = f"{self.url}/v1/batch"

        def iso_now() -> str:
            ms = time.time_ns() // 1_000_000
            secs, frac = divmod(ms, 1000)
            return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:03d}Z"

        async def post(session: Any, body: bytes) -> None:
            async with session.post(url, data=body, headers=headers) as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"batch answered {r.status}")

        def call(user: str, i: int) -> bytes:
            return dumps(
                {
                    "type": "track",
                    "userId": user,
                    "event": EVENT_NAME,
                    "properties": {"path": "/pricing", "n": i},
                    "context": context,
                    "messageId": new_event_id()[0],
                    "timestamp": iso_now(),
                }
            )

        def body(items: list[bytes]) -> bytes:
            sent_at = iso_now().encode()
            return b'{"batch":[' + b",".join(items) + b'],"sentAt":"' + sent_at + b'"}'

        async def main() -> dict[str, Any]:
            conn = aiohttp.TCPConnector(limit=25, ssl=self.ssl_context())
            async with aiohttp.ClientSession(connector=conn) as session:
                await post(session, body([call("warm-up", 0)]))
                queue: asyncio.Queue[bytes | None] = asyncio.Queue(self.IN_FLIGHT)

                async def sender() -> None:
                    while (b := await queue.get()) is not None:
                        await post(session, b)

                users, nu = USERS, len(USERS)
                deadline = time.monotonic() + budget
                c0, t0 = time.process_time(), time.perf_counter()
                senders = [asyncio.ensure_future(sender()) for _ in range(self.IN_FLIGHT)]
                sent, items, size = 0, [], 0
                while sent < events and time.monotonic() < deadline:
                    item = call(users[sent % nu], sent)
                    if len(items) >= self.BATCH or size + len(item) + 64 > self.MAX_BYTES:
                        await queue.put(body(items))
                        items, size = [], 0
                    items.append(item)
                    size += len(item) + 1
                    sent += 1
                if items:
                    await queue.put(body(items))
                for _ in senders:
                    await queue.put(None)
                await asyncio.gather(*senders)
                elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
            out = _stream_result(sent, 0, elapsed, cpu)
            out["dropped"] = 0
            return out

        return _run(main())


PEERS: dict[str, type[Peer]] = {
    p.name: p
    for p in (
        CioAsync,
        CioAsyncPrevious,
        Ceiling,
        CustomerIOSerial,
        CustomerIOThreads,
        CDPAnalytics,
        AsyncCustomerIOPeer,
        AsyncCustomerIOBatch,
        CioAsyncPipelines,
        CioAsyncPipelinesGzip,
        CioAsyncPipelinesFixed8,
        CDPDefaults,
        PipelinesLoop,
    )
}

#: The Python package each peer needs (None: always there).
REQUIRES: dict[str, str | None] = {
    "cio_async": None,
    "cio_async_prev": None,
    "ceiling": None,
    "customerio": "customerio",
    "customerio_t25": "customerio",
    "cdp": "customerio.analytics",
    "async_customerio": "async_customerio",
    "async_customerio_batch": "async_customerio",
    "cio_async_pipelines": None,
    "cio_async_pipelines_gzip": None,
    "cio_async_pipelines_fixed8": None,
    "cdp_defaults": "customerio.analytics",
    "pipelines_loop": None,
}


def available(name: str) -> bool:
    """Whether the peer's package is installed."""
    import importlib.util

    if name == "cio_async_prev":
        return bool(os.environ.get("CIO_BENCH_BASELINE"))
    module = REQUIRES[name]
    if module is None:
        return True
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False
