"""The benchmark harness at tiny sizes, so it cannot rot. Nothing here asserts speed:
only that every piece runs, talks to the stand-in process and reports."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from benchmarks import report
from benchmarks._util import StandInProcess, counts_delta, machine_info, summarize
from benchmarks.peers import PEERS, available
from benchmarks.run import PIPELINES_PEERS, SIZES, Harness
from benchmarks.webload import parse_wrk

# Slow (a stand-in process, every workload, valgrind inside): CI runs it,
# `scripts/test --quick` does not. Generous: the machine running the suite may be shared.
pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]


@pytest.fixture(scope="module")
def standin() -> Iterator[StandInProcess]:
    pytest.importorskip("trustme")
    with StandInProcess(rtt=0.0) as s:
        yield s


def _doc(h: Harness) -> dict[str, Any]:
    return {
        "size": "tiny",
        "sizes": h.sizes,
        "peers": h.peers,
        "peers_missing": [],
        "machine": machine_info(),
        "note": "",
        "duration_s": 1.0,
        "default_rtt": 0.0,
        "results": h.results,
    }


def test_harness_runs_every_workload_for_cio_async_and_the_ceiling(
    standin: StandInProcess,
) -> None:
    logs: list[str] = []
    sizes = dict(SIZES["tiny"])
    h = Harness(sizes, ["cio_async", "ceiling"], logs.append)
    h.stream(standin)
    h.peers = ["cio_async"]
    h.rate_limited(standin)
    h.identify(standin)
    h.burst(standin)
    h.identify_same(standin)
    h.web(standin)
    h.micro()
    h.instructions(standin)
    failed = [r for r in h.results if r.get("error")]
    assert not failed, failed
    by = {(r["workload"], r["peer"], r.get("variant")): r for r in h.results}
    stream = by[("stream", "cio_async", None)]["summary"]
    assert stream["delivered"]["median"] == sizes["stream_events"]
    assert by[("stream", "ceiling", None)]["summary"]["lost"]["median"] == 0
    assert by[("identify_same", "cio_async", None)]["summary"]["requests"]["median"] == 1
    assert by[("identify", "cio_async", "cold")]["summary"]["median_ms"]["median"] > 0
    web = by[("web", "cio_async", None)]
    assert web["runs"][0]["standin"].get("person.event", 0) > 0  # the handler tracked
    inst = by[("instructions", "cio_async", None)]
    if inst.get("na"):
        assert "valgrind" in inst["na"]
    else:
        assert inst["summary"]["instructions_per_event"]["median"] > 1000
    micro = by[("micro", "cio_async", None)]["summary"]
    assert micro["queued_bytes_per_event"]["median"] > 0
    assert micro["identify_hit_median_us"]["median"] > 0

    doc = _doc(h)
    md = report.markdown(doc)
    assert "## Targets" in md and "## 3. A stream" in md and "## 5. An aiohttp" in md
    assert "results (snapshot)" in report.results_page(doc)
    json.dumps(doc)  # what run.py writes


# The Pipelines clients run their own workload (test_benchmarks_pipelines_smoke).
@pytest.mark.parametrize("peer", sorted(set(PEERS) - set(PIPELINES_PEERS)))
def test_each_installed_peer_streams_to_the_stand_in(standin: StandInProcess, peer: str) -> None:
    if peer == "cio_async_prev" and not available(peer):
        pytest.skip("cio_async_prev runs a baseline checkout (scripts/bench --baseline REF)")
    if not available(peer):
        pytest.skip(f"{peer} is not installed (scripts/bench installs it)")
    h = Harness(dict(SIZES["tiny"]), [peer], lambda _: None)
    before = standin.state()
    standin.configure(lean=True)
    try:
        h.repeat(
            "stream",
            peer,
            standin,
            {"events": 300, "budget": 0.5},
            1,
            60,
            h._stream_extract,
        )
    finally:
        standin.configure(lean=False)
    row = h.results[0]
    assert not row.get("error"), row
    assert row["summary"]["delivered"]["median"] > 0
    assert counts_delta(before, standin.state()).get("operations", 0) > 0


def test_stand_in_process_control_and_helpers(standin: StandInProcess) -> None:
    state = standin.configure(reset=True)
    assert state["counts"] == {} and state["url"] == standin.url
    assert summarize([3.0, 1.0, 2.0])["median"] == 2.0
    assert summarize([])["median"] is None
    assert standin.cpu_seconds() >= 0


def test_parse_wrk_output() -> None:
    out = """Running 1s test @ http://127.0.0.1:1/
  Latency Distribution
     50%  512.00us
     75%    1.20ms
     90%    2.00ms
     99%   12.50ms
  1234 requests in 1.00s, 200.00KB read
Requests/sec:   1234.50
"""
    parsed = parse_wrk(out)
    assert parsed["p50_ms"] == pytest.approx(0.512)
    assert parsed["p99_ms"] == pytest.approx(12.5)
    assert parsed["requests"] == 1234 and parsed["rps"] == 1234.5


async def test_python_load_generator() -> None:
    # The fallback when wrk is not installed (as on CI).
    from aiohttp import web

    from benchmarks.webload import load

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        result = await load(f"http://127.0.0.1:{port}/", 2, 0.3, 50)
    finally:
        await runner.cleanup()
    assert result["requests"] == 50 and result["errors"] == 0
    assert 0 < result["p50_ms"] <= result["p99_ms"]


async def test_lean_mode_counts_batch_operations_without_recording() -> None:
    import aiohttp

    from benchmarks.standin import LEAN_ROUTE, LeanCounting
    from cio_async.testing import StandIn

    server = StandIn()
    LeanCounting(server)
    ops = [
        {"type": "person", "action": "event", "identifiers": {"id": "1"}, "name": "e"},
        {"type": "person", "action": "event", "identifiers": {"id": "1"}, "name": "e"},
        {"type": "person", "action": "identify", "identifiers": {"id": "1"}},
    ]
    token = base64.b64encode(f"{server.site_id}:{server.track_api_key}".encode()).decode()
    headers = {"Authorization": f"Basic {token}"}
    async with server, aiohttp.ClientSession(headers=headers) as session:
        url = server.url + "/api/v2/batch"
        async with session.post(url, json={"batch": ops}) as resp:
            assert resp.status == 200
        assert len(server.operations) == 3  # off by default: checked and recorded
        server.reset()
        async with session.post(server.url + LEAN_ROUTE, json={"lean": True}) as resp:
            assert await resp.json() == {"lean": True}
        async with session.post(url, json={"batch": ops}) as resp:
            assert resp.status == 200
        async with session.post(url, json={"nope": 1}) as resp:
            assert resp.status == 400
        assert server.counts["operations"] == 3 and server.counts["person.event"] == 2
        assert server.counts["batches"] == 1 and server.counts["lean_malformed"] == 1
        assert server.operations == [] and server.seen_event_ids == set()
        assert server.counts["requests"] == 2  # the switch is out of band


async def test_lean_mode_counts_pipelines_calls_without_recording() -> None:
    import gzip

    import aiohttp

    from benchmarks.standin import LEAN_ROUTE, LeanCounting
    from cio_async.testing import StandIn

    server = StandIn()
    LeanCounting(server)
    calls = [
        {"type": "track", "userId": "1", "event": "e"},
        {"type": "track", "userId": "2", "event": "e"},
        {"type": "page", "userId": "1"},
    ]
    async with server, aiohttp.ClientSession() as session:
        async with session.post(server.url + LEAN_ROUTE, json={"lean": True}) as resp:
            assert await resp.json() == {"lean": True}
        body = gzip.compress(orjson.dumps({"batch": calls}))
        async with session.post(
            server.url + "/v1/batch", data=body, headers={"Content-Encoding": "gzip"}
        ) as resp:
            assert resp.status == 200
        assert server.counts["cdp.track"] == 2 and server.counts["cdp_calls"] == 3
        assert not server.pipelines.calls  # counted, not recorded


def test_spool_benchmark_worker_reports(standin: StandInProcess, tmp_path: Any) -> None:
    from benchmarks.spool import _worker

    spec = {
        **standin.spec(),
        "events": 2000,
        "producers": 20,
        "sync_interval": 0.005,
        "spool": str(tmp_path),
    }
    out = _worker(spec)
    assert out["events"] == 2000 and out["failed"] == 0 and out["commits"] >= 1
    assert out["await_p50_ms"] > 0 and "disk_bytes_per_event" in out
