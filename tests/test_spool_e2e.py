"""The durable spool end to end: real client processes writing to a spool, killed
with SIGKILL mid-stream; a later (or sibling) client delivers what they left to the
stand-in, which ignores repeated event ids as Customer.io does."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from cio_async import (
    AsyncCustomerIO,
    BatchPolicy,
    ClientConfig,
    ConfigurationError,
    CustomerIO,
    SpoolConfig,
)
from cio_async.cli import main as cli_main
from cio_async.spool import inspect_dir
from cio_async.spool._drain import drain
from cio_async.testing import StandIn

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX only")

_WORKER = """
import asyncio, sys
from cio_async import AsyncCustomerIO, BatchPolicy, Region

URL, SPOOL, TAG = sys.argv[1], sys.argv[2], sys.argv[3]

async def main():
    cio = AsyncCustomerIO(
        "stand-in-site", "stand-in-track-key",
        region=Region.custom(URL, URL, name="stand-in"),
        spool=SPOOL,
        batch=BatchPolicy(linger=0.05, max_batch_events=200),
    )
    await cio.start()
    print("started", flush=True)
    if TAG == "idle":  # a sibling worker that only delivers what it adopts
        await asyncio.Event().wait()
    n = 0

    async def producer(w):
        nonlocal n
        while True:
            n += 1
            k = n
            event_id = await cio.track(f"user-{k % 50}", "spooled", {"n": k, "tag": TAG})
            sys.stdout.write(f"awaited {event_id}\\n")
            if k % 4 == 0:
                nid = cio.track_nowait(f"user-{k % 50}", "nowait", {"n": k, "tag": TAG})
                sys.stdout.write(f"nowait {nid}\\n")
            sys.stdout.flush()

    await asyncio.gather(*(producer(w) for w in range(20)))

asyncio.run(main())
"""


def _start_worker(url: str, spool: Path, tag: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_WORKER), url, str(spool), tag],
        stdout=subprocess.PIPE,
        text=True,
    )


async def _read_until(proc: subprocess.Popen[str], awaited: int) -> tuple[set[str], set[str]]:
    """Read the worker's lines (in a thread: a blocking pipe) until ``awaited`` awaited
    calls returned; SIGKILL it there; then read what it printed before dying."""

    def run() -> tuple[set[str], set[str]]:
        assert proc.stdout is not None
        done: set[str] = set()
        nowait: set[str] = set()
        assert proc.stdout.readline() == "started\n"
        for line in proc.stdout:
            kind, _, event_id = line.strip().partition(" ")
            (done if kind == "awaited" else nowait).add(event_id)
            if len(done) >= awaited:
                proc.send_signal(signal.SIGKILL)
                break
        for line in proc.stdout:  # printed before the kill landed
            kind, _, event_id = line.strip().partition(" ")
            if event_id:
                (done if kind == "awaited" else nowait).add(event_id)
        proc.wait()
        proc.stdout.close()
        return done, nowait

    done, nowait = await asyncio.to_thread(run)
    assert proc.returncode == -signal.SIGKILL
    return done, nowait


def _spool_env(monkeypatch: pytest.MonkeyPatch, stand_in: StandIn) -> None:
    monkeypatch.setenv("CUSTOMERIO_SITE_ID", stand_in.site_id)
    monkeypatch.setenv("CUSTOMERIO_TRACK_API_KEY", stand_in.track_api_key)
    monkeypatch.setenv("CUSTOMERIO_TRACK_URL", stand_in.url)


async def test_sigkill_mid_stream_then_restart_delivers_every_awaited_event_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A slow Customer.io: a backlog builds up in the worker, undelivered at the kill.
    async with StandIn(rtt=0.2) as stand_in:
        proc = _start_worker(stand_in.url, tmp_path, "a")
        awaited, nowait = await _read_until(proc, 1000)
        before = {o.event_id for o in stand_in.events()}
        left = sum(r.operations for r in inspect_dir(str(tmp_path)))
        assert left > 0  # the kill did leave undelivered operations behind
        stand_in.rtt = 0.0
        _spool_env(monkeypatch, stand_in)
        out = io.StringIO()
        assert await drain(str(tmp_path), 60, out) == 0, out.getvalue()
        assert "replayed" in out.getvalue()
        ids = [o.event_id for o in stand_in.events()]
    # Every awaited event arrived, each exactly once by event id (the stand-in records
    # an id once and counts repeats, as Customer.io ignores them).
    assert awaited <= set(ids)
    assert len(ids) == len(set(ids))
    assert len(awaited - before) > 0  # some awaited ones came only from the replay
    # A nowait call is on disk within one sync_interval: the kill can only have lost
    # those of the last interval, a handful at this rate.
    lost_nowait = nowait - set(ids)
    assert len(lost_nowait) <= 50
    assert [r for r in inspect_dir(str(tmp_path)) if r.operations] == []


async def test_a_killed_worker_events_are_delivered_by_its_live_sibling(tmp_path: Path) -> None:
    async with StandIn(rtt=0.2) as stand_in:
        sibling = _start_worker(stand_in.url, tmp_path, "idle")
        try:
            assert sibling.stdout is not None
            assert await asyncio.to_thread(sibling.stdout.readline) == "started\n"
            # Both run on one directory; the victim dies with a backlog.
            victim = _start_worker(stand_in.url, tmp_path, "victim")
            awaited, _ = await _read_until(victim, 500)
            assert sum(r.operations for r in inspect_dir(str(tmp_path))) > 0
            stand_in.rtt = 0.0
            # The sibling, already running, adopts the dead worker's file on its next
            # scan and delivers it.
            await stand_in.wait_for(
                lambda s: awaited <= {o.event_id for o in s.events()}, timeout=30
            )
        finally:
            sibling.kill()
            sibling.wait()
            assert sibling.stdout is not None
            sibling.stdout.close()
        counts = Counter(o.event_id for o in stand_in.events())
        assert max(counts.values()) == 1


async def test_two_live_workers_never_share_a_file(tmp_path: Path) -> None:
    async with StandIn(rtt=0.2) as stand_in:
        procs = [_start_worker(stand_in.url, tmp_path, t) for t in ("x", "y")]
        try:
            for p in procs:
                assert p.stdout is not None
                assert await asyncio.to_thread(p.stdout.readline) == "started\n"
            reports = inspect_dir(str(tmp_path))
            assert sorted(r.pid for r in reports if r.state == "live") == sorted(
                p.pid for p in procs
            )
        finally:
            for p in procs:
                p.kill()
                p.wait()
                assert p.stdout is not None
                p.stdout.close()


async def test_await_track_returns_once_on_disk_and_stats_count_the_spool(
    tmp_path: Path,
) -> None:
    async with StandIn(rtt=1.0) as stand_in:  # nothing gets delivered during the test
        async with AsyncCustomerIO(**stand_in.client_kwargs(), spool=tmp_path) as cio:
            for n in range(10):
                await cio.track("p", "ev", {"n": n})  # returns long before delivery
            st = cio.stats()
            assert st.spool is not None
            assert st.spool.spooled == 10 and st.spool.commits >= 1
            assert st.spool.spooled_bytes > 0 and st.spool.disk_bytes > 0
            assert st.delivered == 0
            [report] = inspect_dir(str(tmp_path))
            assert report.operations == 10 and report.state == "live"
            await cio.aclose(timeout=0.1)
        st = cio.stats()
        # Undelivered at shutdown: handed to on_drop, and kept on disk for later.
        assert st.dropped.get("shutdown") == 10
        assert sum(r.operations for r in inspect_dir(str(tmp_path))) == 10
        stand_in.rtt = 0.0
        async with AsyncCustomerIO(**stand_in.client_kwargs(), spool=tmp_path) as again:
            await again.start()  # the spool is open and the replay queued
            assert (await again.flush(5)).delivered == 10
            st = again.stats()
            assert st.spool is not None and st.spool.replayed == 10
            assert st.admitted == st.delivered == 10
        assert {o.body["attributes"]["n"] for o in stand_in.events()} == set(range(10))


async def test_a_full_spool_applies_the_when_full_policy(tmp_path: Path) -> None:
    dropped: list[str] = []
    async with StandIn(rtt=1.0) as stand_in:
        cio = AsyncCustomerIO(
            **stand_in.client_kwargs(),
            spool=SpoolConfig(str(tmp_path), max_bytes=1_000_000),
            batch=BatchPolicy(when_full="drop_newest", max_in_flight=1),
            on_drop=lambda op, reason: dropped.append(reason),
        )
        big = {"blob": "x" * 900}
        await cio.start()
        for n in range(1500):  # ~1.4 MB into a 1 MB spool, faster than one round trip
            cio.track_nowait("p", "ev", {**big, "n": n})
        st = cio.stats()
        assert st.spool is not None and st.spool.spooled_bytes <= 1_000_000
        assert dropped and set(dropped) == {"queue_full"}
        assert st.dropped["queue_full"] == len(dropped)
        await cio.aclose(timeout=0.1)


def test_spool_reaches_the_sync_client_and_from_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUSTOMERIO_SPOOL", str(tmp_path / "env"))
    monkeypatch.setenv("CUSTOMERIO_SITE_ID", "site")
    monkeypatch.setenv("CUSTOMERIO_TRACK_API_KEY", "key")
    assert ClientConfig.from_env().spool == SpoolConfig(str(tmp_path / "env"))
    with pytest.raises(ConfigurationError, match="sync_interval"):
        ClientConfig(spool=SpoolConfig(str(tmp_path), sync_interval=0))

    async def serve() -> None:
        async with StandIn() as stand_in:
            kwargs = stand_in.client_kwargs()

            def use_sync() -> None:
                with CustomerIO(**kwargs, spool=str(tmp_path / "sync")) as cio:
                    cio.track("p", "ev", {"n": 1})
                    cio.flush()

            await asyncio.to_thread(use_sync)
            assert [o.body["attributes"]["n"] for o in stand_in.events()] == [1]

    asyncio.run(serve())
    # Delivered: the file is gone on close.
    assert list((tmp_path / "sync").glob("*.spool")) == []


def test_spool_inspect_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async def leave() -> None:
        async with StandIn(rtt=1.0) as stand_in:
            cio = AsyncCustomerIO(**stand_in.client_kwargs(), spool=tmp_path)
            for n in range(3):
                await cio.track("p", "ev", {"n": n})
            await cio.aclose(timeout=0.05)

    asyncio.run(leave())

    assert cli_main(["spool", "inspect", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "orphan" in text and "3 operations in 1 file(s); 3 orphaned" in text


def test_fork_child_uses_its_own_spool_file(tmp_path: Path) -> None:
    async def parent() -> None:
        async with StandIn(rtt=1.0) as stand_in:
            cio = AsyncCustomerIO(**stand_in.client_kwargs(), spool=tmp_path)
            await cio.track("p", "parent", {"n": 0})
            await cio.aclose(timeout=0.05)

    asyncio.run(parent())
    sync_dir = tmp_path / "sync"

    async def child_side() -> None:
        async with StandIn() as stand_in:
            kwargs = stand_in.client_kwargs()

            def run() -> int:
                with CustomerIO(**kwargs, spool=str(sync_dir)) as cio:
                    cio.track("p", "before-fork", {"n": 1})
                    pid = os.fork()
                    if pid == 0:  # pragma: no cover - reports through its exit status
                        code = 1
                        try:
                            cio.track("p", "in-child", {"n": 2})
                            cio.close()
                            code = 0
                        finally:
                            os._exit(code)
                    cio.track("p", "after-fork", {"n": 3})
                    cio.flush()
                    _, status = os.waitpid(pid, 0)
                    return os.waitstatus_to_exitcode(status)

            assert await asyncio.to_thread(run) == 0
            names = sorted(o.name or "" for o in stand_in.events())
            assert names == ["after-fork", "before-fork", "in-child"]

    asyncio.run(child_side())
    assert list(sync_dir.glob("*.spool")) == []
