"""One measurement in a fresh process: ``python -m benchmarks.worker < spec.json``.

The spec names the workload, the peer, the stand-in to talk to and the sizes. The
result is printed as one ``RESULT {json}`` line. A fresh process per measurement keeps
peak RSS, CPU time, threads and garbage from one peer out of another's numbers.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from typing import Any

from ._util import peak_rss_bytes, rss_bytes
from .peers import PEERS, NotApplicable


def run(spec: dict[str, Any]) -> dict[str, Any]:
    workload, peer_name = spec["workload"], spec["peer"]
    if peer_name == "cio_async_prev":
        # The previous release, imported instead of this tree (nothing imported it yet).
        sys.path.insert(0, os.environ["CIO_BENCH_BASELINE"])
    params: dict[str, Any] = spec.get("params", {})
    if workload == "micro":
        from . import micro

        return micro.run(params, peer_name)
    if workload == "pipelines_admission":
        from . import micro

        return micro.pipelines_admission(params["calls"], peer_name)
    peer = PEERS[peer_name](spec["standin"])
    if params.get("in_flight") is not None and hasattr(peer, "IN_FLIGHT"):
        peer.IN_FLIGHT = params["in_flight"]
    if workload == "identify":
        return {"latencies": peer.identify_latency(params["mode"], params["calls"])}
    if workload == "burst":
        durations = peer.burst(params["events"], params["bursts"])
        return {"durations": durations, "warmup_requests": peer.burst_warmup_requests}
    if workload in ("stream", "rate_limited"):
        rss0 = rss_bytes()
        out = peer.stream(params["events"], params["budget"])
        out["rss_start"] = rss0
        out["peak_rss"] = peak_rss_bytes()
        return out
    if workload == "pipelines":
        rss0 = rss_bytes()
        out = peer.pipelines(params["events"], params["budget"])
        out["rss_start"] = rss0
        out["peak_rss"] = peak_rss_bytes()
        return out
    if workload == "identify_same":
        return peer.identify_same(params["calls"], params["budget"])
    raise ValueError(f"unknown workload {workload!r}")


def main() -> int:
    spec = json.loads(sys.stdin.read())
    t0 = time.perf_counter()
    try:
        result: dict[str, Any] = {"ok": True, **run(spec)}
    except NotApplicable as exc:
        result = {"ok": False, "na": str(exc)}
    except Exception as exc:
        traceback.print_exc()
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]}
    result["worker_seconds"] = time.perf_counter() - t0
    print("RESULT " + json.dumps(result), flush=True)
    sys.stderr.flush()
    # Leave without atexit handlers: customerio-cdp-analytics registers a join() of
    # its consumer thread, which blocks for minutes while a batch is being retried.
    os._exit(0)


if __name__ == "__main__":
    main()
