"""Real forks: an async client started in the parent works in the child; the blocking
client delivers what a multiprocessing child tracked although the child leaves through
``os._exit``; the blocking client starts no thread until it is used; a client preloaded
and used in a real ``gunicorn --preload`` master works in its workers."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO

import anyio.from_thread
import pytest

from cio_async import AsyncCustomerIO, BatchPolicy, CustomerIO, RetryPolicy
from cio_async.pipelines import AsyncPipelines, Pipelines
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


def test_async_pipelines_started_in_parent_works_in_an_os_fork_child(
    threaded_server: StandIn,
) -> None:
    loop = asyncio.new_event_loop()
    cdp = AsyncPipelines(**threaded_server.pipelines_kwargs(), batch=HELD, retry=FAST)

    async def start() -> list[str]:
        await cdp.start()
        return [await cdp.track("p", "parent") for _ in range(10)]

    ids = loop.run_until_complete(start())

    async def child_work() -> bool:
        for i in range(5):
            await cdp.track("c", "child", {"i": i})
        result = await cdp.aclose()
        return result.complete and result.delivered == 5

    pid = os.fork()
    if pid == 0:  # pragma: no cover - reports through its exit status
        try:
            ok = asyncio.run(child_work())
        except BaseException:
            os._exit(2)
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    try:
        result = loop.run_until_complete(cdp.aclose())
    finally:
        loop.close()
    assert result.delivered == 10
    events = sorted(c.body["event"] for c in threaded_server.pipelines.calls)
    assert events == ["child"] * 5 + ["parent"] * 10, "the parent's queue was sent once"
    parent = {c.message_id for c in threaded_server.pipelines.calls if c.body["event"] == "parent"}
    assert parent == set(ids)


# -- 15. the blocking client in multiprocessing children --------------------------------


def _track_500(cio: CustomerIO | Pipelines) -> None:
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


def _exitcode_of_child(target: Callable[..., None], *args: object) -> int | None:
    proc = multiprocessing.get_context("fork").Process(target=target, args=args)
    proc.start()
    proc.join(60)
    return proc.exitcode


def test_a_multiprocessing_child_delivers_every_pipelines_call(threaded_server: StandIn) -> None:
    # The child above, through the Pipelines facade: the same exit hook flushes it.
    with Pipelines(**threaded_server.pipelines_kwargs(), batch=HELD) as cdp:
        assert _exitcode_of_child(_track_500, cdp) == 0
        assert len(threaded_server.pipelines.find(event="mp")) == 500


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


# -- gunicorn --preload: the client used in the master, then in every worker -----------

_GUNICORN_APP = """\
import multiprocessing
import os

from cio_async import ClientConfig, CustomerIO

# The "first-*" requests wait here for each other: a sync worker serves one request at
# a time, so the two of them are served by both workers.
both_workers = multiprocessing.get_context("fork").Barrier(2)

# Preloaded in the master: the client is built and used there, so its loop thread and
# session exist before gunicorn forks the workers.
cio = CustomerIO(config=ClientConfig.from_env())
cio.track("master", "preloaded")
cio.flush(5)


def app(environ, start_response):
    request_id = environ["PATH_INFO"].strip("/")
    if request_id.startswith("first-"):
        both_workers.wait(10)
    event_id = cio.track(request_id, "handled", {"pid": os.getpid()})
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [event_id.encode()]
"""

_GUNICORN_CONF = """\
graceful_timeout = 5  # a worker stuck in its exit hook is killed, not waited for 30 s
control_socket_disable = True  # gunicorn >= 27 would make one under ~/.gunicorn


def worker_exit(server, worker):
    from app import cio

    cio.close(timeout=10)
"""


def _listening_port(stderr: IO[str]) -> int:
    """Read gunicorn's log until it says where it listens (bound to port 0)."""
    seen = []
    for line in stderr:
        seen.append(line)
        if "Listening at: http://127.0.0.1:" in line:
            return int(line.rsplit(":", 1)[1].split()[0])
    raise AssertionError("gunicorn did not start:\n" + "".join(seen))


def test_gunicorn_preload_workers_deliver_what_they_tracked_once(
    threaded_server: StandIn, tmp_path: Path
) -> None:
    pytest.importorskip("gunicorn")
    (tmp_path / "app.py").write_text(_GUNICORN_APP)
    (tmp_path / "gunicorn.conf.py").write_text(_GUNICORN_CONF)
    env = {**os.environ, **threaded_server.environ()}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
    argv = [sys.executable, "-m", "gunicorn", "--preload", "-w", "2", "-k", "sync"]
    argv += ["--bind", "127.0.0.1:0", "-c", "gunicorn.conf.py", "app:app"]
    requests = ["first-0", "first-1"] + [f"req-{i}" for i in range(40)]
    with subprocess.Popen(argv, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stderr is not None
        # Drain the log (once it says where gunicorn listens) so it never blocks writing.
        drain = threading.Thread(target=proc.stderr.read)
        try:
            port = _listening_port(proc.stderr)
            drain.start()

            def get(request_id: str) -> str:
                url = f"http://127.0.0.1:{port}/{request_id}"
                with urllib.request.urlopen(url, timeout=10) as resp:
                    return str(resp.read().decode())

            with ThreadPoolExecutor(4) as pool:
                event_ids = list(pool.map(get, requests))
        finally:
            # A graceful stop, also when a request failed: the workers run worker_exit
            # and close the log pipe, so the drain ends.
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            finally:
                if proc.poll() is None:
                    proc.kill()
                if drain.is_alive():
                    drain.join()
    assert proc.returncode == 0
    handled = threaded_server.events("handled")
    assert sorted(e.event_id or "" for e in handled) == sorted(event_ids)
    assert len(set(event_ids)) == len(requests)
    assert sorted(e.identifiers["id"] for e in handled) == sorted(requests)
    worker_pids = {e.body["attributes"]["pid"] for e in handled}
    assert len(worker_pids) == 2, "both workers tracked"
    assert proc.pid not in worker_pids
    assert len(threaded_server.events("preloaded")) == 1
    assert threaded_server.counts["duplicate_events_ignored"] == 0
