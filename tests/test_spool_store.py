"""The spool store on its own: real SQLite files, the real writer thread, real
subprocesses killed with SIGKILL, a real fork and a real full filesystem."""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from cio_async.spool import Spool, SpoolError, inspect_dir
from cio_async.spool._file import split

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX only (flock, fork)")


def rows_on_disk(directory: Path) -> list[bytes]:
    """Every operation in the directory's spool files, read by a separate connection."""
    out: list[bytes] = []
    for p in sorted(directory.glob("*.spool")):
        out += ops_in(str(p))
    return out


def ops_in(path: str) -> list[bytes]:
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT id, lens, body FROM ops ORDER BY id").fetchall()
    conn.close()
    return [b for first, lens, body in rows for _, b in split(first, lens, body)]


async def replay_all(spool: Spool, page: int = 100) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    while rows := await spool.replay_page(page):
        out += rows
    return out


async def test_awaited_rows_are_on_disk_and_acks_delete_them(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path), sync_interval=0.002)
    await spool.start()
    ids = [spool.append(b'{"n":%d}' % i) for i in range(50)]
    await spool.durable(ids[-1])
    # Another connection (as another process would) sees every row committed.
    assert rows_on_disk(tmp_path) == [b'{"n":%d}' % i for i in range(50)]
    assert spool.stats().commits >= 1
    size = {i: len(b'{"n":%d}' % (i - 1)) for i in ids}
    # One group commit is one row: it goes once all its operations are settled.
    spool.ack(ids[:30], sum(size[i] for i in ids[:30]))
    await spool.durable(spool.append(b"x"))  # the ack rides on the next transaction
    assert len(rows_on_disk(tmp_path)) == 51
    spool.ack(ids[30:], sum(size[i] for i in ids[30:]))
    await spool.durable(spool.append(b"y"))
    assert rows_on_disk(tmp_path) == [b"x", b"y"]
    assert spool.stats().spooled == 2
    await spool.aclose()
    # Undelivered rows stay on disk for a later process.
    assert len(list(tmp_path.glob("*.spool"))) == 1


async def test_an_empty_spool_deletes_its_file_on_close(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path), sync_interval=0.002)
    await spool.start()
    i = spool.append(b"a")
    await spool.durable(i)
    spool.ack([i], 1)
    await spool.aclose()
    assert list(tmp_path.iterdir()) == []


async def test_a_row_delivered_before_its_commit_never_reaches_the_disk(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path), sync_interval=0.05)
    await spool.start()
    i = spool.append(b"fast")
    j = spool.append(b"fast")
    spool.ack([i, j], 8)  # delivered within the sync interval
    await spool.commit()
    assert rows_on_disk(tmp_path) == []
    await spool.durable(spool.append(b"slow"))
    assert rows_on_disk(tmp_path) == [b"slow"]
    await spool.aclose()


async def test_replay_pages_through_a_dead_process_file_with_its_ids(tmp_path: Path) -> None:
    first = Spool(str(tmp_path), sync_interval=0.002)
    await first.start()
    for i in range(250):
        first.append(b'{"id":"e%d"}' % i)
    await first.commit()
    await first.aclose()  # leaves 250 undelivered rows
    second = Spool(str(tmp_path), sync_interval=0.002)
    await second.start()
    assert second.stats().spooled == 250
    got = await replay_all(second, page=100)
    assert [b for _, b in got] == [b'{"id":"e%d"}' % i for i in range(250)]
    assert second.stats().replayed == 250
    second.ack([i for i, _ in got], sum(len(b) for _, b in got))
    await second.aclose()
    assert list(tmp_path.iterdir()) == []  # the adopted file is deleted once delivered


def _kill_script(directory: Path) -> str:
    return textwrap.dedent(
        f"""
        import asyncio, sys
        from cio_async.spool import Spool

        async def main():
            spool = Spool({str(directory)!r}, sync_interval=0.003)
            await spool.start()
            n = 0
            while True:
                ids = [spool.append(b'{{"n":%d}}' % (n + k)) for k in range(100)]
                await spool.durable(ids[-1])
                n += 100
                sys.stdout.write(f"{{n}}\\n")
                sys.stdout.flush()
                for k in range(50):  # not awaited: may or may not survive
                    spool.append(b'{{"nowait":%d}}' % (n * 100 + k))

        asyncio.run(main())
        """
    )


def test_sigkill_mid_stream_loses_nothing_that_was_acknowledged(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _kill_script(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    durable = 0
    for line in proc.stdout:
        durable = int(line)
        if durable >= 20_000:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL

    async def recover() -> list[bytes]:
        spool = Spool(str(tmp_path), sync_interval=0.002)
        await spool.start()
        rows = await replay_all(spool, page=5000)
        await spool.aclose()
        return [b for _, b in rows]

    bodies = asyncio.run(recover())
    numbered = [b for b in bodies if b.startswith(b'{"n"')]
    assert numbered[:durable] == [b'{"n":%d}' % i for i in range(durable)]
    assert len(set(bodies)) == len(bodies)


def test_a_live_process_file_is_never_adopted(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from cio_async.spool import Spool

        async def main():
            spool = Spool({str(tmp_path)!r}, sync_interval=0.002)
            await spool.start()
            await spool.durable(spool.append(b"held"))
            print("ready", flush=True)
            sys.stdin.readline()
            await spool.aclose()

        asyncio.run(main())
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        assert proc.stdout.readline() == "ready\n"
        [report] = inspect_dir(str(tmp_path))
        assert report.state == "live" and report.operations == 1 and report.pid == proc.pid

        async def try_adopt() -> int:
            spool = Spool(str(tmp_path))
            await spool.start()
            n = len(await replay_all(spool))
            await spool.aclose()
            return n

        assert asyncio.run(try_adopt()) == 0
    finally:
        proc.stdin.close()
        proc.wait()
        proc.stdout.close()
    [report] = inspect_dir(str(tmp_path))
    assert report.state == "orphan" and report.operations == 1


async def test_a_corrupt_file_is_moved_aside_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = Spool(str(tmp_path), sync_interval=0.002)
    await good.start()
    await good.durable(good.append(b"kept"))
    await good.aclose()
    [path] = tmp_path.glob("*.spool")
    bad = tmp_path / "cio-1-deadbeef.spool"
    data = path.read_bytes()
    bad.write_bytes(data[:100] + b"\xff" * 5000)  # a truncated, overwritten database
    caplog.set_level(logging.ERROR, "cio_async")
    spool = Spool(str(tmp_path), sync_interval=0.002)
    await spool.start()
    rows = await replay_all(spool)
    assert [b for _, b in rows] == [b"kept"]
    assert spool.stats().corrupt_files == 1
    assert any(str(bad) in r.getMessage() and "corrupt" in r.getMessage() for r in caplog.records)
    await spool.aclose()
    assert (tmp_path / "cio-1-deadbeef.spool.corrupt").exists()
    assert [r.state for r in inspect_dir(str(tmp_path)) if "deadbeef" in r.path] == ["corrupt"]


@pytest.fixture
def tiny_fs() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="cio-spool-full-"))
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(d)], check=False)
    if r.returncode != 0:
        os.rmdir(d)
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], check=True)
        os.rmdir(d)


async def test_a_full_disk_is_an_error_naming_the_path_not_a_hang(
    tiny_fs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, "cio_async")
    spool = Spool(str(tiny_fs), sync_interval=0.002)
    await spool.start()
    payload = b"x" * 1000
    last = 0
    for _ in range(400):  # 400 KB into 256 KB
        last = spool.append(payload)
    with pytest.raises(SpoolError) as info:
        await asyncio.wait_for(spool.durable(last), 5)
    assert str(tiny_fs) in str(info.value)
    assert getattr(info.value, "retryable", False) is True
    assert spool.full  # admissions now go through the when_full policy
    assert spool.stats().write_errors >= 1
    assert any(str(tiny_fs) in r.getMessage() for r in caplog.records)
    # Delivering what is queued frees the buffer; writes succeed again.
    spool.ack(range(1, last + 1), 400 * 1000)
    i = spool.append(b"small")
    await asyncio.wait_for(spool.durable(i), 5)
    assert not spool.full
    await spool.aclose()


def test_a_forked_child_opens_its_own_file_and_leaves_the_parent_intact(tmp_path: Path) -> None:
    loop = asyncio.new_event_loop()
    spool = Spool(str(tmp_path), sync_interval=0.002, adopt=False)

    async def parent_start() -> None:
        await spool.start()
        await spool.durable(spool.append(b"parent-1"))

    loop.run_until_complete(parent_start())
    parent_file = spool.path
    r, w = os.pipe()
    pid = os.fork()  # the parent's writer thread is running: only this thread is copied
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        code = 1
        try:

            async def child() -> str:
                await spool.start()
                await spool.durable(spool.append(b"child-1"))
                path = spool.path or ""
                await spool.aclose()
                return path

            os.write(w, asyncio.run(child()).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    child_path = os.read(r, 4096).decode()
    os.close(r)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert child_path and child_path != parent_file
    assert Path(child_path).exists()  # undelivered: kept for a later process

    async def parent_more() -> None:
        # The parent's connection and lock still work after the child exited.
        await spool.durable(spool.append(b"parent-2"))
        await spool.aclose()

    try:
        loop.run_until_complete(parent_more())
    finally:
        loop.close()
    assert parent_file is not None
    assert ops_in(parent_file) == [b"parent-1", b"parent-2"]
    assert ops_in(child_path) == [b"child-1"]


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _exit_unless_still(fds: list[int], inode: int) -> None:
    # In the multiprocessing child: the exit status is the verdict. Each descriptor
    # must still be the parent's file (multiprocessing reopens stdin on the lowest
    # free number, so "open" alone would not tell).
    def same(fd: int) -> bool:
        try:
            return os.fstat(fd).st_ino == inode
        except OSError:
            return False

    sys.exit(0 if all(same(fd) for fd in fds) else 3)


async def _use_and_close(spool: Spool) -> set[int]:
    """Start the spool, commit a row and close it; the descriptors open meanwhile."""
    await spool.start()
    await spool.durable(spool.append(b"x"))
    seen = {int(name) for name in os.listdir("/dev/fd")}
    await spool.aclose()
    return seen


@pytest.mark.skipif(not os.path.isdir("/dev/fd"), reason="lists descriptors in /dev/fd")
def test_a_fork_after_a_spool_closed_keeps_every_descriptor_the_parent_opened_since(
    tmp_path: Path,
) -> None:
    # The closed spool is still referenced (here by the test; in a program by what
    # owned it, until it is collected) when the program forks. Its descriptor numbers
    # are free again, and the program's next files, pipes and sockets take them: a
    # child must keep those (a multiprocessing child's own pipe among them).
    spool_dir = tmp_path / "spool"
    spool = Spool(str(spool_dir), sync_interval=0.002, adopt=False)
    seen = asyncio.run(_use_and_close(spool))
    keep = os.open(tmp_path / "program-file", os.O_RDWR | os.O_CREAT, 0o600)
    mine = [keep]
    try:
        for fd in range(3, max(seen) + 1):
            if not _is_open(fd):
                os.dup2(keep, fd)
                mine.append(fd)
        proc = multiprocessing.get_context("fork").Process(
            target=_exit_unless_still, args=(mine, os.fstat(keep).st_ino)
        )
        proc.start()
        proc.join(60)
        assert proc.exitcode == 0
    finally:
        for fd in mine:
            os.close(fd)
    assert rows_on_disk(spool_dir) == [b"x"]  # the parent's file kept its row


def test_a_closed_spool_is_not_kept_alive_by_the_fork_hooks(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path), sync_interval=0.002, adopt=False)
    asyncio.run(_use_and_close(spool))
    ref = weakref.ref(spool)
    del spool
    gc.collect()
    assert ref() is None
