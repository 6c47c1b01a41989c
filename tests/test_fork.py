"""Real forks: an async client started in the parent works in the child; the blocking
client delivers what a multiprocessing child tracked although the child leaves through
``os._exit``; the blocking client starts no thread until it is used."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
from collections.abc import Iterator

import anyio.from_thread
import pytest

from cio_async import AsyncCustomerIO, BatchPolicy, CustomerIO, RetryPolicy
from cio_async.testing import StandIn

FAST = RetryPolicy(max_attempts=4, initial_delay=0.001, max_delay=0.01, jitter=0.0)
#: Nothing is sent before a flush: what the parent queued stays queued across the fork.
HELD = BatchPolicy(linger=3600, retry=FAST, shutdown_timeout=10)

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


@pytest.fixture
def threaded_server() -> Iterator[StandIn]:
    """A stand-in on its own loop thread: it keeps serving while the test forks."""
    with anyio.from_thread.start_blocking_portal("asyncio") as portal:
        server = StandIn()
        portal.call(server.start)
        try:
            yield server
        finally:
            portal.call(server.close)


# -- 14. an async client started in the parent -----------------------------------------


async def _child_work(client: AsyncCustomerIO) -> bool:
    for i in range(5):
        await client.track("c", "child", {"i": i})
    await client.v1.identify("c", {"from": "child"})  # a direct request too
    result = await client.aclose()
    return result.complete and result.delivered == 5


def _child(client: AsyncCustomerIO) -> None:
    # Runs in the forked child, in a fresh loop; the exit code is the verdict.
    try:
        ok = asyncio.run(_child_work(client))
    except BaseException:
        os._exit(2)
    os._exit(0 if ok else 1)


def _started_parent(
    server: StandIn,
) -> tuple[asyncio.AbstractEventLoop, AsyncCustomerIO, list[str]]:
    loop = asyncio.new_event_loop()
    client = AsyncCustomerIO(**server.client_kwargs(), batch=HELD, retry=FAST)

    async def start() -> list[str]:
        await client.start()
        await client.v1.identify("p", {"from": "parent"})  # opens the parent's pool
        return [await client.track("p", "parent") for _ in range(10)]

    return loop, client, loop.run_until_complete(start())


def _finish_parent(
    server: StandIn, loop: asyncio.AbstractEventLoop, client: AsyncCustomerIO, ids: list[str]
) -> None:
    try:
        result = loop.run_until_complete(client.aclose())
    finally:
        loop.close()
    assert result.delivered == 10
    names = sorted(e.name or "" for e in server.events())
    assert names == ["child"] * 5 + ["parent"] * 10, "the parent's queue was sent once"
    assert {e.event_id for e in server.events("parent")} == set(ids)
    assert server.people["id:c"]["from"] == "child"


def test_async_client_started_in_parent_works_in_an_os_fork_child(
    threaded_server: StandIn,
) -> None:
    loop, client, ids = _started_parent(threaded_server)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - reports through its exit status
        _child(client)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    _finish_parent(threaded_server, loop, client, ids)


def test_async_client_started_in_parent_works_in_a_multiprocessing_fork_child(
    threaded_server: StandIn,
) -> None:
    loop, client, ids = _started_parent(threaded_server)
    proc = multiprocessing.get_context("fork").Process(target=_child, args=(client,))
    proc.start()
    proc.join(60)
    assert proc.exitcode == 0
    _finish_parent(threaded_server, loop, client, ids)


# -- 15. the blocking client in multiprocessing children --------------------------------


def _track_500(cio: CustomerIO) -> None:
    for i in range(500):
        cio.track("m", "mp", {"i": i})
    # Returning ends the child through multiprocessing's os._exit: no atexit.


def test_a_multiprocessing_child_delivers_everything_it_tracked(threaded_server: StandIn) -> None:
    cio = CustomerIO(**threaded_server.client_kwargs(), batch=HELD)
    try:
        proc = multiprocessing.get_context("fork").Process(target=_track_500, args=(cio,))
        proc.start()
        proc.join(60)
        assert proc.exitcode == 0
        assert len(threaded_server.events("mp")) == 500
    finally:
        cio.close()


def _make_and_track(server_kwargs: dict[str, object]) -> None:
    cio = CustomerIO(**server_kwargs, batch=HELD)  # type: ignore[arg-type]
    for i in range(50):
        cio.track("m", "made-in-child", {"i": i})


def test_a_client_made_in_a_multiprocessing_child_is_flushed_at_its_exit(
    threaded_server: StandIn,
) -> None:
    proc = multiprocessing.get_context("fork").Process(
        target=_make_and_track, args=(threaded_server.client_kwargs(),)
    )
    proc.start()
    proc.join(60)
    assert proc.exitcode == 0
    assert len(threaded_server.events("made-in-child")) == 50


def test_the_blocking_client_starts_its_thread_on_first_use(threaded_server: StandIn) -> None:
    def loop_threads() -> int:
        return sum(t.name == "cio_async-loop" for t in threading.enumerate())

    before = loop_threads()
    with CustomerIO(**threaded_server.client_kwargs(), batch=HELD) as cio:
        assert loop_threads() == before  # constructing it started nothing
        cio.track("x", "first")
        assert loop_threads() == before + 1
    assert loop_threads() == before
    assert len(threaded_server.events("first")) == 1


def test_the_blocking_client_still_refuses_bad_arguments_at_construction() -> None:
    from cio_async import ConfigurationError

    with pytest.raises(ConfigurationError):
        CustomerIO("site", None)  # a site id without its key


def test_the_worker_exit_hook_function_flushes_an_os_exit_child(
    threaded_server: StandIn,
) -> None:
    # What the README's Celery ``worker_process_shutdown`` / gunicorn ``worker_exit``
    # hooks call, in a child that then leaves through os._exit as those workers do.
    cio = CustomerIO(**threaded_server.client_kwargs(), batch=HELD)

    def flush_customerio(**kwargs: object) -> None:
        cio.close(timeout=10)

    pid = os.fork()
    if pid == 0:  # pragma: no cover - reports through its exit status
        try:
            for i in range(200):
                cio.track("w", "worker", {"i": i})
            flush_customerio(sender=None)
        except BaseException:
            os._exit(2)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(threaded_server.events("worker")) == 200
    cio.close()


def test_direct_calls_in_the_parent_do_not_bind_the_child(threaded_server: StandIn) -> None:
    # Only client.v1 was used (the pipeline never started): the transport is bound.
    loop = asyncio.new_event_loop()
    client = AsyncCustomerIO(**threaded_server.client_kwargs(), batch=HELD, retry=FAST)
    loop.run_until_complete(client.v1.identify("p", {"from": "parent"}))

    async def child_work() -> None:
        await client.v1.identify("c", {"from": "child"})
        await client.aclose()

    pid = os.fork()
    if pid == 0:  # pragma: no cover - reports through its exit status
        try:
            asyncio.run(child_work())
        except BaseException:
            os._exit(2)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    try:
        loop.run_until_complete(client.aclose())
    finally:
        loop.close()
    assert os.waitstatus_to_exitcode(status) == 0
    assert threaded_server.people["id:c"]["from"] == "child"


def test_a_celery_prefork_style_billiard_child_delivers_everything_it_tracked(
    threaded_server: StandIn,
) -> None:
    billiard = pytest.importorskip("billiard")
    cio = CustomerIO(**threaded_server.client_kwargs(), batch=HELD)
    try:
        proc = billiard.get_context("fork").Process(target=_track_500, args=(cio,))
        proc.start()
        proc.join(60)
        assert proc.exitcode == 0
        assert len(threaded_server.events("mp")) == 500
    finally:
        cio.close()
