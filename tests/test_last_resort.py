"""An application that configured no logging still learns, on stderr, that operations
are being lost: deliveries failing (a wrong key), the count lost at close, and a client
that was never closed. Real subprocesses against a real stand-in."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import anyio.from_thread
import pytest

from cio_async.testing import StandIn

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def threaded_server() -> Iterator[StandIn]:
    with anyio.from_thread.start_blocking_portal("asyncio") as portal:
        server = StandIn()
        portal.call(server.start)
        try:
            yield server
        finally:
            portal.call(server.close)


def run_script(body: str, server: StandIn) -> subprocess.CompletedProcess[str]:
    script = textwrap.dedent(
        """
        import asyncio, logging, sys
        from cio_async import AsyncCustomerIO, BatchPolicy, Region, RetryPolicy

        URL = sys.argv[1]
        BATCH = BatchPolicy(linger=0.01, retry=RetryPolicy(max_attempts=2, initial_delay=0.001))
        """
    ) + textwrap.dedent(body)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTOMERIO_")}
    env["PYTHONWARNINGS"] = "ignore"  # the default for applications: ResourceWarning hidden
    return subprocess.run(
        [sys.executable, "-c", script, server.url],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
        check=False,
    )


WRONG_KEY = """
async def main():
    async with AsyncCustomerIO("site", "wrong-key", region=Region.custom(URL), batch=BATCH) as cio:
        for i in range(5):
            cio.track_nowait(str(i), "purchase")
        await cio.flush(5)
        for i in range(3):
            cio.track_nowait(str(i), "again")
{configure}
asyncio.run(main())
"""


def test_wrong_key_without_logging_is_reported_once_and_counted_at_close(
    threaded_server: StandIn,
) -> None:
    proc = run_script(WRONG_KEY.format(configure=""), threaded_server)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("cio_async: ")]
    failing = [ln for ln in lines if "deliveries to Customer.io are failing" in ln]
    assert len(failing) == 1, proc.stderr  # once, not once per operation
    assert "AuthenticationError" in failing[0]
    (closed,) = [ln for ln in lines if "closed with operations lost" in ln]
    assert "8 failed (auth: 8)" in closed
    assert threaded_server.counts["unauthorized"] >= 1


def test_with_logging_configured_only_logging_reports(threaded_server: StandIn) -> None:
    configure = "logging.basicConfig(level=logging.WARNING, format='LOG %(message)s')"
    proc = run_script(WRONG_KEY.format(configure=configure), threaded_server)
    assert proc.returncode == 0, proc.stderr
    assert not [ln for ln in proc.stderr.splitlines() if ln.startswith("cio_async: ")]
    assert "LOG 5 operation(s) failed (auth)" in proc.stderr


def test_a_client_never_closed_reports_the_operations_it_lost(threaded_server: StandIn) -> None:
    body = """
    async def main():
        cio = AsyncCustomerIO("site", "key", region=Region.custom(URL),
                              batch=BatchPolicy(linger=3600))
        await cio.start()
        for i in range(7):
            cio.track_nowait(str(i), "purchase")
        # Returns without aclose(): the queue dies with the client.
    asyncio.run(main())
    """
    proc = run_script(body, threaded_server)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("cio_async: ")]
    assert len(lines) == 1, proc.stderr
    assert "never closed: 7 queued operation(s)" in lines[0]
    assert threaded_server.events() == []
