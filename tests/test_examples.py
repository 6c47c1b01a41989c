"""The worked examples in examples/ run against the stand-in and report real numbers."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry, generate_latest

from cio_async import CustomerIO, CustomerIOError
from cio_async.testing import StandIn
from examples.otel_hooks import OpenTelemetryHooks
from examples.prometheus_hooks import PrometheusHooks

from .conftest import FAST_BATCH, FAST_RETRY, ClientFactory
from .test_integrations import ROOT, free_port, wait_listening


async def traffic(make_client: ClientFactory, server: StandIn, hooks: object) -> None:
    server.fail_next(503, path="/api/v2/batch")
    c = make_client(hooks=[hooks])
    async with c:
        for i in range(12):
            c.track_nowait(str(i), "e")
        await c.flush()
        await c.v1.identify("1", {"a": 1})


async def test_prometheus_example(make_client: ClientFactory, server: StandIn) -> None:
    registry = CollectorRegistry()
    await traffic(make_client, server, PrometheusHooks(registry))
    text = generate_latest(registry).decode()
    assert 'cio_request_seconds_count{operation="batch",status="503"} 1.0' in text
    assert 'cio_request_seconds_count{operation="batch",status="200"} 1.0' in text
    assert 'cio_request_seconds_count{operation="identify",status="200"} 1.0' in text
    assert 'cio_retries_total{operation="batch"} 1.0' in text
    assert "cio_batch_events_sum 24.0" in text  # 12 events, sent twice (503, then 200)


async def test_opentelemetry_example(make_client: ClientFactory, server: StandIn) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        await traffic(make_client, server, OpenTelemetryHooks(provider.get_meter("test")))
        data = reader.get_metrics_data()
    finally:
        provider.shutdown()
    assert data is not None
    metrics = {
        m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    }
    durations = {
        (p.attributes["operation"], p.attributes["status"]): p.count
        for p in metrics["cio.request.duration"].data.data_points
    }
    assert durations == {("batch", "503"): 1, ("batch", "200"): 1, ("identify", "200"): 1}
    (retries,) = metrics["cio.retries"].data.data_points
    assert retries.value == 1


# -- the app, worker and import examples, run as a user would run them ------------------


def _env(server: StandIn, **extra: str) -> dict[str, str]:
    return {**os.environ, **server.environ(), "PYTHONPATH": str(ROOT), **extra}


async def _serve(server: StandIn, port: int, *argv: str, **env: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(server, **env),
        cwd=ROOT,
    )
    await wait_listening(port)
    return proc


async def _stop(proc: asyncio.subprocess.Process) -> str:
    proc.send_signal(signal.SIGTERM)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    # uvicorn re-raises the signal after its graceful shutdown; aiohttp exits 0.
    assert proc.returncode in (0, -signal.SIGTERM), err.decode()[-2000:]
    assert b"Traceback" not in err, err.decode()[-2000:]
    return out.decode() + err.decode()


async def test_fastapi_example_under_uvicorn(server: StandIn) -> None:
    port = free_port()
    proc = await _serve(
        server, port, "-m", "uvicorn", "examples.fastapi_app:app", "--port", str(port)
    )
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            body = {"user_id": "42", "email": "ada@example.com", "plan": "pro"}
            async with http.post("/signup", json=body) as resp:
                assert resp.status == 200, await resp.text()
            async with http.post("/signup", json={"user_id": "43"}) as resp:
                assert resp.status == 422  # FastAPI validated the body: email is required
            async with http.post("/checkout/42") as resp:
                assert await resp.json() == {"ok": True}
            # wait=True: accepted before the response, not at shutdown.
            assert "checkout_started" in {e.name for e in server.events()}
    finally:
        await _stop(proc)
    # signed_up was queued with track_nowait; the lifespan's shutdown flushed it.
    assert sorted(e.name for e in server.events()) == ["checkout_started", "signed_up"]
    assert server.people["id:42"]["plan"] == "pro"


async def test_aiohttp_example_flushes_on_sigterm(server: StandIn) -> None:
    port = free_port()
    proc = await _serve(server, port, "-m", "examples.aiohttp_app", PORT=str(port))
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            async with http.post("/page/42", params={"url": "/pricing"}) as resp:
                assert resp.status == 200
            async with http.post("/purchase/42", json={"amount": 30}) as resp:
                event_id = (await resp.json())["event_id"]
    finally:
        await _stop(proc)
    purchase = server.events("purchase")
    assert [e.event_id for e in purchase] == [event_id]
    assert purchase[0].body["attributes"] == {"amount": 30}
    assert len(server.ops("person", "page")) == 1


async def test_sync_worker_example(server: StandIn) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "examples.sync_worker",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(server),
        cwd=ROOT,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    # 10 identifies + 10 signed_up + 1 order_paid.
    assert out.decode().strip() == "delivered 21, failed jobs 0"
    assert len(server.events("signed_up")) == 10
    assert [e.body["attributes"] for e in server.events("order_paid")] == [{"order_id": 7}]


async def test_sync_worker_example_lets_retryable_failures_propagate(
    server: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The example builds its client at import from the environment, as a worker would.
    for name, value in server.environ().items():
        monkeypatch.setenv(name, value)
    from examples import sync_worker

    def jobs(status: int) -> list[tuple[Any, BaseException]]:
        # Blocking calls on a thread, so this loop keeps serving the stand-in.
        server.clear_faults()
        server.fail_next(status, path="/api/v2/batch", times=10)
        with CustomerIO(**server.client_kwargs(), retry=FAST_RETRY, batch=FAST_BATCH) as client:
            original, sync_worker.cio = sync_worker.cio, client
            try:
                return sync_worker.run([sync_worker.Job("1", "order_paid", 7)])
            finally:
                sync_worker.cio = original

    assert await asyncio.to_thread(jobs, 401) == []  # not retryable: reported, job done
    ((job, exc),) = await asyncio.to_thread(jobs, 503)  # retryable: the job raises
    assert job.order_id == 7 and isinstance(exc, CustomerIOError) and exc.retryable
    assert server.events("order_paid") == []


async def test_bulk_import_example(
    make_client: ClientFactory, server: StandIn, tmp_path: Path
) -> None:
    from examples.bulk_import import import_people

    path = tmp_path / "people.csv"
    path.write_text(
        "id,email,plan\n1,a@example.com,pro\n,nobody@example.com,\n2,,free\n3,c@example.com,\n"
    )

    def reject(op: Mapping[str, Any]) -> tuple[str, str] | None:
        if op.get("identifiers") == {"id": "3"} and op.get("action") == "identify":
            return ("attributes", "refused by the workspace")
        return None

    server.reject_operation = reject
    async with make_client() as cio:
        counts = await import_people(path, cio)
    assert counts == {"delivered": 5, "rejected": 1, "invalid": 1}
    assert sorted(server.people) == ["id:1", "id:2"]
    assert len(server.events("imported")) == 3
