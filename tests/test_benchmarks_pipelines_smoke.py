"""The Pipelines benchmark (issue 14) at tiny sizes, so it cannot rot. Nothing here
asserts speed: only that every client runs against the stand-in process and reports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from benchmarks import report
from benchmarks._util import StandInProcess, machine_info
from benchmarks.peers import available
from benchmarks.run import SIZES, Harness

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def standin() -> Iterator[StandInProcess]:
    pytest.importorskip("trustme")
    with StandInProcess(rtt=0.0) as s:
        yield s


def test_pipelines_workload_runs_and_reports(standin: StandInProcess) -> None:
    peers = ["cio_async_pipelines", "pipelines_loop"]
    if available("cdp_defaults"):
        peers.append("cdp_defaults")
    h = Harness(dict(SIZES["tiny"]), [], lambda _: None, pipelines_peers=peers)
    h.pipelines(standin)
    failed = [r for r in h.results if r.get("error")]
    assert not failed, failed
    by = {(r["peer"], r["variant"]): r["summary"] for r in h.results}
    for variant in ("stream", "burst"):
        got = by[("cio_async_pipelines", variant)]
        assert got["lost"]["median"] == 0 and got["events_per_s"]["median"] > 0
        assert got["admission_us"]["median"] > 0
        assert by[("pipelines_loop", variant)]["lost"]["median"] == 0
    doc = {
        "size": "tiny",
        "sizes": h.sizes,
        "peers": peers,
        "peers_missing": [],
        "machine": machine_info(),
        "note": "",
        "duration_s": 1.0,
        "default_rtt": 0.0,
        "results": h.results,
    }
    md = report.markdown(doc)
    assert "## 8. The Pipelines API" in md
    assert "Pipelines CPU per event" in md
