"""The blocking ``CustomerIO`` facade, from plain threads, across fork, at exit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import anyio.from_thread
import pytest

from cio_async import (
    BatchPolicy,
    ClientClosedError,
    CustomerIO,
    RetryPolicy,
    ValidationError,
)
from cio_async.testing import StandIn

ROOT = Path(__file__).resolve().parent.parent
FAST = BatchPolicy(linger=0.01, retry=RetryPolicy(max_attempts=4, initial_delay=0.001))


@pytest.fixture
def threaded_server() -> Iterator[StandIn]:
    """A stand-in running on its own loop thread, for synchronous tests."""
    with anyio.from_thread.start_blocking_portal("asyncio") as portal:
        server = StandIn()
        portal.call(server.start)
        try:
            yield server
        finally:
            portal.call(server.close)


def test_sync_client_end_to_end(threaded_server: StandIn) -> None:
    with CustomerIO(**threaded_server.client_kwargs(), batch=FAST) as cio:
        assert cio.identify("42", {"plan": "pro"})
        assert not cio.identify("42", {"plan": "pro"})  # deduplicated
        ids = [cio.track("42", "purchase", {"n": i}) for i in range(50)]
        cio.page("42", "/home")
        eid = cio.track_and_wait("42", "reset")
        cio.v1.submit_form("f", {"email": "a@example.com"})
        region = cio.v1.get_region()
        result = cio.flush(timeout=5)
        assert result.complete
        stats = cio.stats()
        with pytest.raises(ValidationError):
            cio.track("", "e")
    assert cio.closed
    assert region.region == "us"
    assert stats.deduplicated == 1
    got = {e.event_id for e in threaded_server.events()}
    assert set(ids) | {eid} <= got
    assert len(threaded_server.ops("form")) == 1
    with pytest.raises(ClientClosedError):
        cio.track("42", "late")
    assert cio.close().delivered == 0  # idempotent


def test_sync_app_api(threaded_server: StandIn) -> None:
    with CustomerIO(**threaded_server.client_kwargs(), batch=FAST) as cio:
        cio.identify("42", {"plan": "pro"}, wait=True)
        attrs = cio.app.get_attributes("42")
        found = cio.app.search_people(
            {"attribute": {"field": "plan", "operator": "eq", "value": "pro"}}
        )
    assert attrs is not None
    assert attrs.attributes["plan"] == "pro"
    assert [p.id for p in found] == ["42"]


def test_fork_child_never_resends_parent_queue(threaded_server: StandIn) -> None:
    cio = CustomerIO(
        **threaded_server.client_kwargs(), batch=BatchPolicy(linger=3600, retry=FAST.retry)
    )
    parent_ids = [cio.track("p", "parent") for _ in range(10)]  # queued, unsent (linger)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        try:
            for _ in range(5):
                cio.track("c", "child")
            ok = cio.close(timeout=5).complete
        except BaseException:
            os._exit(2)
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    cio.close(timeout=5)
    names = sorted(e.name or "" for e in threaded_server.events())
    assert names == ["child"] * 5 + ["parent"] * 10
    assert {e.event_id for e in threaded_server.events("parent")} == set(parent_ids)


def test_unclosed_client_is_flushed_at_exit(threaded_server: StandIn) -> None:
    script = textwrap.dedent(f"""
        from cio_async import BatchPolicy, CustomerIO, Region
        cio = CustomerIO({threaded_server.site_id!r}, {threaded_server.track_api_key!r},
                         region=Region.custom({threaded_server.url!r}),
                         batch=BatchPolicy(linger=3600))
        for i in range(20):
            cio.track("x", "at-exit")
        # no close(): the atexit hook must flush
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert len(threaded_server.events("at-exit")) == 20
