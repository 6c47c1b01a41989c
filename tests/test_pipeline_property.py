"""Property: for any interleaving of admissions, faults, flushes and a shutdown, every
admitted operation is delivered or reported (on_error / on_drop); none vanishes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cio_async import (
    AsyncCustomerIO,
    BatchPolicy,
    Operation,
    QueueBackend,
    QueueFullError,
    RetryPolicy,
)
from cio_async.testing import StandIn

from .backends import DeferredBackend

#: Every queue backend runs the whole property through the ``QueueBackend`` interface.
#: ``deferred`` implements it differently from memory (ids, appends that commit later),
#: to prove the seam; durable backends join this table.
BACKENDS: dict[str, Callable[[], QueueBackend | None]] = {
    "memory": lambda: None,
    "deferred": DeferredBackend,
}

FAULTS = ["500", "503", "429", "drop", "drop_after", "delay"]

action = st.one_of(
    st.tuples(st.just("admit"), st.integers(1, 30), st.booleans()),
    st.tuples(st.just("poison"), st.just(1), st.booleans()),
    st.tuples(st.just("fault"), st.sampled_from(FAULTS), st.integers(1, 3)),
    st.tuples(st.just("flush"), st.sampled_from([0.0, 0.01, 5.0]), st.just(False)),
    st.tuples(st.just("yield"), st.integers(1, 5), st.just(False)),
)


async def scenario(
    actions: list[tuple[Any, Any, Any]],
    close_timeout: float,
    policy: str,
    backend: QueueBackend | None = None,
) -> None:
    reported: set[str] = set()
    admitted: list[str] = []

    def on_error(exc: BaseException, op: Operation | None) -> None:
        if op is not None and op.event_id:
            reported.add(op.event_id)

    def on_drop(op: Operation, reason: str) -> None:
        if op.event_id:
            reported.add(op.event_id)

    async with StandIn() as server:
        client = AsyncCustomerIO(
            **server.client_kwargs(),
            batch=BatchPolicy(
                max_batch_events=7,
                linger=0.005,
                max_in_flight=3,
                max_queue_events=40,
                when_full=policy,  # type: ignore[arg-type]
                block_timeout=0.01,
                retry=RetryPolicy(max_attempts=3, initial_delay=0.001, max_delay=0.005),
            ),
            on_error=on_error,
            on_drop=on_drop,
            queue=backend,
        )
        waiters: list[asyncio.Future[Any]] = []
        await client.start()
        n = 0
        for kind, a, b in actions:
            if kind == "admit":
                for _ in range(a):
                    n += 1
                    try:
                        if b:
                            fut = asyncio.ensure_future(client.track(str(n % 4), "e", wait=True))
                            waiters.append(fut)
                            await asyncio.sleep(0)
                        else:
                            admitted.append(client.track_nowait(str(n % 4), "e"))
                    except QueueFullError:  # refused at admission: never admitted
                        pass
            elif kind == "poison":
                op = Operation.from_dict(
                    {
                        "type": "person",
                        "action": "event",
                        "identifiers": {"id": "p"},
                        "id": f"poison-{n}",
                    }  # no name: the stand-in rejects it (207)
                )
                try:
                    await client.send(op)
                    admitted.append(f"poison-{n}")
                except QueueFullError:
                    pass
            elif kind == "fault":
                if a == "drop":
                    server.drop_next(times=b)
                elif a == "drop_after":
                    server.drop_next(times=b, after_processing=True)
                elif a == "delay":
                    server.delay_next(0.01, times=b)
                else:
                    server.fail_next(int(a), times=b, retry_after=0.001 if a == "429" else None)
            elif kind == "flush":
                await client.flush(timeout=a)
            else:
                for _ in range(a):
                    await asyncio.sleep(0)
        await client.aclose(timeout=close_timeout)
        for w in waiters:
            try:
                admitted.append(await w)
            except Exception as exc:
                name = type(exc).__name__
                assert name in {
                    # Refused at admission when aclose() began while it waited for
                    # queue space: never admitted, so nothing was lost.
                    "ClientClosedError",
                    "QueueFullError",
                    "DeliveryAbandonedError",
                    "ServerError",
                    "RateLimitError",
                    "APIConnectionError",
                    "APITimeoutError",
                    "OperationRejectedError",
                }, name
        stats = client.stats()
        at_server = {e.event_id for e in server.ops() if e.event_id}
        missing = [i for i in admitted if i not in at_server and i not in reported]
        assert not missing, f"admitted but neither delivered nor reported: {missing}"
        assert stats.admitted == stats.delivered + stats.failed_total + stats.dropped_total
        assert stats.pending == 0
        assert stats.queue_depth == 0


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    actions=st.lists(action, min_size=1, max_size=12),
    close_timeout=st.sampled_from([0.0, 0.02, 5.0]),
    policy=st.sampled_from(["block", "drop_newest", "drop_oldest"]),
)
def test_nothing_admitted_is_lost(
    backend: str, actions: list[tuple[Any, Any, Any]], close_timeout: float, policy: str
) -> None:
    asyncio.run(scenario(actions, close_timeout, policy, BACKENDS[backend]()))
