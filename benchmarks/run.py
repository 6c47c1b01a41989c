"""Run the benchmark suite: ``scripts/bench [--quick] [--only W,...] [--save]``.

Starts one stand-in process per simulated RTT (TLS, certificate made for the run),
runs every workload for cio_async and each peer in fresh worker processes, repeats
them, and writes ``benchmarks/results/latest.json`` and ``latest.md`` (medians,
spread, ratios). ``--save`` also writes the committed ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "benchmarks"

from benchmarks import report
from benchmarks._util import ROOT, StandInProcess, counts_delta, machine_info, summarize
from benchmarks.peers import PEERS, available
from benchmarks.webload import MODES, run_load

WORKLOADS = (
    "identify",
    "burst",
    "stream",
    "instructions",
    "identify_same",
    "web",
    "rate_limited",
    "micro",
    "pipelines",
)

#: The Pipelines API clients (issue 14): they run the ``pipelines`` workload only.
PIPELINES_PEERS = (
    "cio_async_pipelines",
    "cdp_defaults",
    "pipelines_loop",
    "cio_async_pipelines_gzip",
    "cio_async_pipelines_fixed8",
)

#: Which peers run which workload (the rest are reported as not applicable by the peer).
STREAM_PEERS = (
    "cio_async",
    "ceiling",
    "customerio",
    "customerio_t25",
    "cdp",
    "async_customerio",
    "async_customerio_batch",
)

SIZES: dict[str, dict[str, Any]] = {
    "full": {
        "rtts": [0.0, 0.05, 0.15],
        "stream_rtts": [0.05, 0.0],
        "repeats": 3,
        "identify_calls": {"warm": 10, "cold": 6},
        "burst_events": 100,
        "bursts": 2,
        "burst_repeats": 2,
        "stream_events": 1_000_000,
        "stream_repeats": 5,
        "instruction_events": [20_000, 220_000],
        "peer_budget": 10.0,
        "peer_repeats": 2,
        "same_calls": 10_000,
        "same_budget": 5.0,
        "web_duration": 10.0,
        "web_connections": 32,
        "web_repeats": 2,
        "rate_limit": 10.0,
        "rate_events": 200_000,
        "rate_budget": 40.0,
        "rate_repeats": 2,
        "admission_calls": 200_000,
        "dedup_calls": 100_000,
        "recorder_calls": 50_000,
        "memory_events": 100_000,
        "micro_repeats": 3,
        "pipelines_events": 500_000,
        "pipelines_burst": 20_000,
    },
    "quick": {
        "rtts": [0.05],
        "stream_rtts": [0.05],
        "repeats": 2,
        "identify_calls": {"warm": 5, "cold": 3},
        "burst_events": 100,
        "bursts": 1,
        "burst_repeats": 1,
        "stream_events": 20_000,
        "instruction_events": [2_000, 12_000],
        "stream_repeats": 2,
        "peer_budget": 2.0,
        "peer_repeats": 1,
        "same_calls": 1_000,
        "same_budget": 2.0,
        "web_duration": 3.0,
        "web_connections": 16,
        "web_repeats": 1,
        "rate_limit": 10.0,
        "rate_events": 20_000,
        "rate_budget": 10.0,
        "rate_repeats": 1,
        "admission_calls": 20_000,
        "dedup_calls": 20_000,
        "recorder_calls": 10_000,
        "memory_events": 20_000,
        "micro_repeats": 1,
        "pipelines_events": 50_000,
        "pipelines_burst": 20_000,
    },
    # For the smoke test: every piece, as small as it goes.
    "tiny": {
        "rtts": [0.0],
        "stream_rtts": [0.0],
        "repeats": 1,
        "identify_calls": {"warm": 2, "cold": 1},
        "burst_events": 10,
        "bursts": 1,
        "burst_repeats": 1,
        "stream_events": 2_000,
        "instruction_events": [200, 1_200],
        "stream_repeats": 1,
        "peer_budget": 0.5,
        "peer_repeats": 1,
        "same_calls": 50,
        "same_budget": 0.5,
        "web_duration": 1.0,
        "web_connections": 4,
        "web_modes": ["cio_async"],
        "web_repeats": 1,
        "rate_limit": 5.0,
        "rate_events": 2_000,
        "rate_budget": 2.0,
        "rate_repeats": 1,
        "admission_calls": 2_000,
        "dedup_calls": 2_000,
        "recorder_calls": 1_000,
        "memory_events": 2_000,
        "micro_repeats": 1,
        "pipelines_events": 2_000,
        "pipelines_burst": 1_000,
    },
}


class Harness:
    def __init__(
        self,
        sizes: dict[str, Any],
        peers: list[str],
        log: Callable[[str], None],
        pipelines_peers: list[str] | None = None,
    ):
        self.sizes = sizes
        self.peers = [p for p in peers if p not in PIPELINES_PEERS]
        self.pipelines_peers = (
            [p for p in PIPELINES_PEERS if available(p)]
            if pipelines_peers is None
            else pipelines_peers
        )
        self.log = log
        self.results: list[dict[str, Any]] = []
        self.default_rtt = 0.05 if 0.05 in sizes["stream_rtts"] else sizes["stream_rtts"][0]

    # -- plumbing ------------------------------------------------------------------------------

    def worker(self, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
        try:
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.worker"],
                input=json.dumps(spec),
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=ROOT,
            )
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": f"worker timed out after {timeout:.0f}s"}
        for line in reversed(out.stdout.splitlines()):
            if line.startswith("RESULT "):
                result: dict[str, Any] = json.loads(line[7:])
                return result
        return {"ok": False, "error": (out.stderr or "no result")[-800:]}

    def add(self, workload: str, peer: str, rtt: float | None, **entry: Any) -> dict[str, Any]:
        row = {"workload": workload, "peer": peer, "rtt": rtt, **entry}
        self.results.append(row)
        return row

    def repeat(
        self,
        workload: str,
        peer: str | list[str],
        s: StandInProcess | None,
        params: dict[str, Any],
        repeats: int,
        timeout: float,
        extract: Callable[[dict[str, Any], dict[str, int], float], dict[str, float]],
        variant: str | None = None,
    ) -> None:
        """Run one workload ``repeats`` times per peer and record per-run metrics.

        Several peers run in turn (A, B, A, B, ...), so a machine that speeds up or
        slows down during the run weighs on each alike, and run ``i`` of one peer can be
        compared with run ``i`` of the other (``report`` takes paired ratios)."""
        peers = [peer] if isinstance(peer, str) else peer
        runs: dict[str, list[dict[str, Any]]] = {p: [] for p in peers}
        metrics: dict[str, dict[str, list[float]]] = {p: {} for p in peers}
        failed: dict[str, tuple[Any, Any]] = {}
        for _ in range(repeats):
            for name in peers:
                if name in failed:
                    continue
                spec = {
                    "workload": workload,
                    "peer": name,
                    "params": params,
                    "standin": s.spec() if s else None,
                }
                before = s.state() if s else {}
                cpu0 = s.cpu_seconds() if s else 0.0
                result = self.worker(spec, timeout)
                delta = counts_delta(before, s.state()) if s else {}
                standin_cpu = (s.cpu_seconds() - cpu0) if s else 0.0
                if not result.get("ok"):
                    failed[name] = (result.get("na"), result.get("error"))
                    continue
                values = extract(result, delta, standin_cpu)
                runs[name].append({"result": result, "standin": delta, "metrics": values})
                for k, v in values.items():
                    metrics[name].setdefault(k, []).append(v)
        for name in peers:
            summary = {k: summarize(v) for k, v in metrics[name].items()}
            na, error = failed.get(name, (None, None))
            self.add(
                workload,
                name,
                s.rtt if s else None,
                variant=variant,
                summary=summary,
                runs=runs[name],
                na=na,
                error=error,
            )
            head = next(iter(summary.items()), None)
            shown = (
                f"{head[0]}={head[1]['median']:.4g}"
                if head and head[1]["median"] is not None
                else (na or error or "")
            )
            rtt = f"rtt={s.rtt * 1000:.0f}ms" if s else "in-process"
            self.log(f"  {workload:14} {variant or '':5} {name:24} {rtt:10} {shown}"[:160])

    # -- workloads -----------------------------------------------------------------------------

    def identify(self, s: StandInProcess) -> None:
        z = self.sizes

        def extract(r: dict[str, Any], d: dict[str, int], _: float) -> dict[str, float]:
            lat = r["latencies"]
            return {"median_ms": summarize(lat)["median"] * 1000}

        for mode in ("warm", "cold"):
            calls = z["identify_calls"][mode]
            for peer in self.peers:
                if peer == "async_customerio_batch":
                    continue
                self.repeat(
                    "identify",
                    peer,
                    s,
                    {"mode": mode, "calls": calls},
                    z["repeats"],
                    60 + calls * 3,
                    extract,
                    variant=mode,
                )

    def burst(self, s: StandInProcess) -> None:
        z = self.sizes

        def extract(r: dict[str, Any], d: dict[str, int], _: float) -> dict[str, float]:
            return {
                "median_ms": summarize(r["durations"])["median"] * 1000,
                "requests": (d.get("requests", 0) - r.get("warmup_requests", 0))
                / max(1, len(r["durations"])),
            }

        for peer in self.peers:
            params = {"events": z["burst_events"], "bursts": z["bursts"]}
            self.repeat(
                "burst",
                peer,
                s,
                params,
                z["burst_repeats"],
                120 + z["burst_events"] * z["bursts"] * (s.rtt + 0.01) * 3,
                extract,
            )

    def _stream_extract(
        self, r: dict[str, Any], d: dict[str, int], standin_cpu: float
    ) -> dict[str, float]:
        sent = r["sent"]
        # Operations the stand-in accepted (minus the warm-up one); a peer that
        # lost events is not credited with them.
        delivered = d.get("operations", 0) - 1 if "operations" in d else sent
        delivered = max(0, min(sent, delivered))
        return {
            "events_per_s": delivered / r["elapsed"],
            "cpu_us_per_event": r["cpu"] / max(1, sent) * 1e6,
            "peak_rss_mb": r["peak_rss"] / 1e6,
            "rss_growth_mb": (r["peak_rss"] - r["rss_start"]) / 1e6,
            "events": sent,
            "delivered": delivered,
            "lost": sent - delivered,
            "standin_cpu_us_per_event": standin_cpu / max(1, sent) * 1e6,
            "rate_limited": d.get("rate_limited", 0),
        }

    def stream(self, s: StandInProcess) -> None:
        z = self.sizes
        s.configure(lean=True)
        # cio_async and the ceiling take turns, run by run: the CPU target is a ratio
        # of the two, and this shared machine's speed drifts by more than the margin.
        full = [p for p in self.peers if p in ("cio_async", "cio_async_prev", "ceiling")]
        if full:
            self.repeat(
                "stream",
                full,
                s,
                {"events": z["stream_events"], "budget": 600.0},
                z["stream_repeats"],
                900,
                self._stream_extract,
            )
        for peer in self.peers:
            if peer not in STREAM_PEERS or peer in full:
                continue
            if s.rtt != self.default_rtt:
                continue  # peers are latency-bound: one RTT is enough to rank them
            self.repeat(
                "stream",
                peer,
                s,
                {"events": z["stream_events"], "budget": z["peer_budget"]},
                z["peer_repeats"],
                z["peer_budget"] + 120,
                self._stream_extract,
            )
        s.configure(lean=False)

    def _pipelines_extract(
        self, r: dict[str, Any], d: dict[str, int], standin_cpu: float
    ) -> dict[str, float]:
        sent = r["sent"]
        # Calls the stand-in received (minus the warm-up one): a client that dropped
        # calls is not credited with them.
        delivered = max(0, min(sent, d.get("cdp_calls", 0) - 1))
        out = {
            "events_per_s": delivered / r["elapsed"],
            "cpu_us_per_event": r["cpu"] / max(1, sent) * 1e6,
            "events": sent,
            "delivered": delivered,
            "lost": sent - delivered,
            "dropped_by_client": r.get("dropped", 0),
            "peak_rss_mb": r["peak_rss"] / 1e6,
            "standin_cpu_us_per_event": standin_cpu / max(1, sent) * 1e6,
        }
        if "admission_us" in r:
            out["admission_us"] = r["admission_us"]
        return out

    def pipelines(self, s: StandInProcess, full: bool = True) -> None:
        """Issue 14: the Pipelines clients posting the same calls to ``/v1/batch``.
        ``stream``: cio_async and the hand-written loop take turns (paired runs) over
        many events; ``burst``: every client, customerio-cdp-analytics with its
        defaults, sends one burst and waits until it is delivered; ``gzip``: the
        burst with and without gzip (at every RTT; ``full=False`` runs only this)."""
        z = self.sizes
        s.configure(lean=True)
        try:
            pair = [
                p
                for p in ("cio_async_pipelines", "cio_async_pipelines_gzip")
                if p in self.pipelines_peers
            ]
            if len(pair) == 2:
                self.repeat(
                    "pipelines",
                    pair,
                    s,
                    {"events": z["pipelines_burst"], "budget": 60.0},
                    z["peer_repeats"],
                    300,
                    self._pipelines_extract,
                    variant="gzip",
                )
            if not full:
                return
            full = [
                p
                for p in ("cio_async_pipelines", "pipelines_loop", "cio_async_pipelines_fixed8")
                if p in self.pipelines_peers
            ]
            if full:
                self.repeat(
                    "pipelines",
                    full,
                    s,
                    {"events": z["pipelines_events"], "budget": 600.0},
                    z["stream_repeats"],
                    900,
                    self._pipelines_extract,
                    variant="stream",
                )
            if "cdp_defaults" in self.pipelines_peers:
                # The official library in the same stream, for a budget: it drops what
                # its queue cannot hold and is credited only with what it delivered.
                self.repeat(
                    "pipelines",
                    ["cdp_defaults"],
                    s,
                    {"events": z["pipelines_events"], "budget": z["peer_budget"]},
                    z["peer_repeats"],
                    z["peer_budget"] + 120,
                    self._pipelines_extract,
                    variant="stream",
                )
            burst = [
                p
                for p in self.pipelines_peers
                if p not in ("cio_async_pipelines_gzip", "cio_async_pipelines_fixed8")
            ]
            if burst:
                self.repeat(
                    "pipelines",
                    burst,
                    s,
                    {"events": z["pipelines_burst"], "budget": 60.0},
                    z["peer_repeats"],
                    300,
                    self._pipelines_extract,
                    variant="burst",
                )
        finally:
            s.configure(lean=False)

    def gzip_cost(self) -> None:
        """What gzip costs and saves on a full batch of typical Pipelines calls
        (in-process): compressed size, ratio, and compression time per batch."""
        import statistics
        import time as _time

        from cio_async._config import ClientConfig
        from cio_async.http._transport import Transport
        from cio_async.pipelines._encode import Encoder, track_encoder
        from cio_async.pipelines._endpoint import PipelinesConfig, PipelinesEndpoint, _gzip

        enc = track_encoder(Encoder())
        items = []
        for i in range(1000):
            got = enc(f"user-{i}", "page_viewed", {"path": "/pricing", "n": i})
            assert got is not None
            items.append(got[0])
        endpoint = PipelinesEndpoint(PipelinesConfig(write_key="k"), Transport(ClientConfig()))
        body = endpoint.body(items)
        summary: dict[str, Any] = {"body_bytes": summarize([len(body)])}
        for level in (1, 6):
            times = []
            for _ in range(15):
                t0 = _time.perf_counter()
                out = _gzip(body, level)
                times.append(_time.perf_counter() - t0)
            summary[f"level{level}_bytes"] = summarize([len(out)])
            summary[f"level{level}_ratio"] = summarize([len(body) / len(out)])
            summary[f"level{level}_ms_per_batch"] = summarize([statistics.median(times) * 1e3])
        self.add("pipelines_gzip_cost", "cio_async_pipelines", None, summary=summary, runs=[])
        self.log(
            f"  gzip cost: {summary['level1_ratio']['median']:.1f}x in "
            f"{summary['level1_ms_per_batch']['median']:.2f} ms per 1000-call batch"
        )

    def pipelines_admission(self) -> None:
        """Issue 14: admission cost per Pipelines call, nothing sent (a worker each)."""
        z = self.sizes

        def extract(r: dict[str, Any], d: dict[str, int], _: float) -> dict[str, float]:
            return {
                f"{k}_{m}": v[m]
                for k, v in r.items()
                if isinstance(v, dict)
                for m in ("median_us", "p99_us")
            }

        peers = [p for p in ("cio_async_pipelines", "cdp_defaults") if p in self.pipelines_peers]
        if peers:
            self.repeat(
                "pipelines_admission",
                peers,
                None,
                {"calls": z["admission_calls"]},
                z["micro_repeats"],
                600,
                extract,
            )

    def pipelines_gzip(self, s: StandInProcess) -> None:
        """The Pipelines gzip comparison alone (at the RTTs other than the default)."""
        self.pipelines(s, full=False)

    def rate_limited(self, s: StandInProcess) -> None:
        z = self.sizes
        s.configure(lean=True, rate_limit=z["rate_limit"], reset=True)
        try:
            for peer in self.peers:
                if peer not in STREAM_PEERS:
                    continue
                full = peer in ("cio_async", "ceiling")
                params = {
                    "events": z["rate_events"],
                    "budget": z["rate_budget"] if full else z["peer_budget"],
                }
                self.repeat(
                    "rate_limited",
                    peer,
                    s,
                    params,
                    z["rate_repeats"] if full else 1,
                    params["budget"] + 180,
                    self._stream_extract,
                )
        finally:
            s.configure(lean=False, rate_limit=None)

    def identify_same(self, s: StandInProcess) -> None:
        z = self.sizes

        def extract(r: dict[str, Any], d: dict[str, int], _: float) -> dict[str, float]:
            calls, target = r["calls"], z["same_calls"]
            # A peer stopped by the time budget is scaled up to the full count; one
            # that made every call is reported as counted.
            scale = 1.0 if calls >= target else target / max(1, calls)
            return {
                "requests": d.get("requests", 0) * scale,
                "operations": d.get("operations", 0) * scale,
                "calls": calls,
                "elapsed_s": r["elapsed"],
            }

        for peer in self.peers:
            if peer == "async_customerio_batch":
                continue
            params = {"calls": z["same_calls"], "budget": z["same_budget"]}
            self.repeat(
                "identify_same",
                peer,
                s,
                params,
                z["repeats"] if peer == "cio_async" else z["peer_repeats"],
                z["same_budget"] + 120,
                extract,
            )

    def web(self, s: StandInProcess) -> None:
        z = self.sizes
        for mode in z.get("web_modes", MODES):
            if mode != "off" and mode not in self.peers:
                continue
            p50: list[float] = []
            p99: list[float] = []
            rps: list[float] = []
            runs = []
            error = None
            for _ in range(z["web_repeats"]):
                before = s.state()
                try:
                    load = self._web_once(s, mode)
                except Exception as exc:
                    error = f"{type(exc).__name__}: {exc}"[:300]
                    break
                delta = counts_delta(before, s.state())
                runs.append({"load": load, "standin": delta})
                p50.append(load["p50_ms"])
                p99.append(load["p99_ms"])
                rps.append(load["rps"])
            self.add(
                "web",
                mode,
                s.rtt,
                summary={
                    "p50_ms": summarize(p50),
                    "p99_ms": summarize(p99),
                    "requests_per_s": summarize(rps),
                },
                runs=runs,
                error=error,
            )
            shown = f"p50={summarize(p50)['median']} p99={summarize(p99)['median']}"
            self.log(f"  web            {mode:30} {shown if p50 else error}"[:160])

    def _web_once(self, s: StandInProcess, mode: str) -> dict[str, Any]:
        z = self.sizes
        proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.webload", "serve", mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert proc.stdin is not None
        assert proc.stdout is not None
        try:
            proc.stdin.write(json.dumps(s.spec()) + "\n")
            proc.stdin.close()
            line = proc.stdout.readline()
            if not line.startswith("listening on "):
                raise RuntimeError(f"web app did not start: {line!r}")
            url = line.split()[-1]
            load = run_load(url, z["web_connections"], z["web_duration"])
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            out = proc.stdout.read()
            proc.stdout.close()
        load["served"] = out.strip()
        return load

    def instructions(self, s: StandInProcess) -> None:
        """The stream's client CPU per event counted in machine instructions, under
        valgrind's callgrind: unlike CPU seconds on a shared VM, the count repeats to
        within a fraction of a percent. Each peer streams two sizes; the difference
        divided by the difference in events is the marginal cost of one event (start-up
        and imports cancel out). The stand-in runs outside valgrind, at RTT 0."""
        valgrind = shutil.which("valgrind")
        small, large = self.sizes["instruction_events"]
        s.configure(lean=True)
        try:
            for peer in [p for p in self.peers if p in ("cio_async", "cio_async_prev", "ceiling")]:
                counts: list[int] = []
                error = None if valgrind else "valgrind is not installed"
                for events in (small, large) if valgrind else ():
                    spec = {
                        "workload": "stream",
                        "peer": peer,
                        # Every peer with the ceiling's 10 batches in flight (see
                        # ``CioAsync.IN_FLIGHT``): the per-event cost, not the ramp.
                        "params": {"events": events, "budget": 3600.0, "in_flight": 10},
                        "standin": s.spec(),
                    }
                    count, error = self._callgrind(valgrind or "", spec)
                    if count is None:
                        break
                    counts.append(count)
                summary = {}
                if len(counts) == 2:
                    per_event = (counts[1] - counts[0]) / (large - small)
                    summary = {"instructions_per_event": summarize([per_event])}
                self.add(
                    "instructions",
                    peer,
                    s.rtt,
                    summary=summary,
                    runs=[{"events": [small, large], "instructions": counts}],
                    na=error if not valgrind else None,
                    error=error if valgrind else None,
                )
                shown = f"{summary['instructions_per_event']['median']:,.0f}" if summary else error
                self.log(f"  {'instructions':14} {'':5} {peer:24} {'rtt=0ms':10} {shown}")
        finally:
            s.configure(lean=False)

    def _callgrind(self, valgrind: str, spec: dict[str, Any]) -> tuple[int | None, str | None]:
        cmd = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null"]
        cmd += [sys.executable, "-m", "benchmarks.worker"]
        # A fixed hash seed: dict and set layouts (and so the instruction count) then
        # repeat from run to run.
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        try:
            out = subprocess.run(
                cmd,
                input=json.dumps(spec),
                capture_output=True,
                text=True,
                timeout=1800,
                cwd=ROOT,
                env=env,
            )
        except subprocess.TimeoutExpired:
            return None, "valgrind run timed out"
        found = re.search(r"Collected : (\d+)", out.stderr)
        if '"ok": true' not in out.stdout or not found:
            return None, (out.stderr or out.stdout or "no result")[-500:]
        return int(found.group(1)), None

    def micro(self) -> None:
        z = self.sizes
        params = {
            "admission_calls": z["admission_calls"],
            "dedup_calls": z["dedup_calls"],
            "recorder_calls": z["recorder_calls"],
            "memory_events": z["memory_events"],
        }

        def extract(r: dict[str, Any], d: dict[str, int], _: float) -> dict[str, float]:
            out: dict[str, float] = {}
            adm = r.get("admission", {})
            for k in ("track_nowait", "await_track", "track_nowait_hooks"):
                if k in adm:
                    out[f"{k}_median_us"] = adm[k]["median_us"]
                    out[f"{k}_p99_us"] = adm[k]["p99_us"]
            for k, v in r.get("dedup", {}).items():
                if isinstance(v, dict):
                    out[f"{k}_median_us"] = v["median_us"]
                    out[f"{k}_p99_us"] = v["p99_us"]
            for k, v in r.get("recorder", {}).items():
                if isinstance(v, dict):
                    out[f"{k}_median_us"] = v["median_us"]
            mem = r.get("queued_memory", {})
            if mem:
                out["queued_bytes_per_event"] = mem["bytes_per_event_tracemalloc"]
                out["queued_rss_bytes_per_event"] = mem["bytes_per_event_rss"]
            return out

        for peer in ("cio_async", "cio_async_prev", "cdp"):
            if peer not in self.peers:
                continue
            self.repeat("micro", peer, None, params, z["micro_repeats"], 600, extract)


def baseline_checkout(ref: str) -> str:
    """A checkout of ``ref`` (a detached git worktree) for the ``cio_async_prev`` peer."""
    sha = subprocess.run(
        ["git", "rev-parse", "--verify", ref + "^{commit}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    path = ROOT / "benchmarks" / "results" / "baseline" / sha[:12]
    if not (path / "cio_async").is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "worktree", "add", "--detach", "-f", str(path), sha],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
    return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/bench", description="cio_async benchmark suite (see benchmarks/README.md)"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--only", default="", help=f"comma-separated workloads: {','.join(WORKLOADS)}"
    )
    parser.add_argument("--peers", default="", help="comma-separated peers (default: all)")
    parser.add_argument(
        "--rtt", default="", help="comma-separated RTTs in ms for identify/burst (e.g. 0,50,150)"
    )
    parser.add_argument(
        "--stream-rtt", default="", help="comma-separated RTTs in ms for the stream (e.g. 50,150)"
    )
    parser.add_argument(
        "--baseline",
        default="",
        help="a git ref (e.g. main~1) to run side by side as peer cio_async_prev "
        "(checked out with git worktree under benchmarks/results/baseline)",
    )
    parser.add_argument(
        "--instruction-events",
        default="",
        help="the two stream sizes counted under callgrind (e.g. 20000,120000)",
    )
    parser.add_argument("--repeats", type=int, default=0, help="override repetitions")
    parser.add_argument("--save", action="store_true", help="also write benchmarks/RESULTS.md")
    parser.add_argument("--note", default="", help="a note for RESULTS.md (e.g. machine load)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)

    size_name = "tiny" if args.tiny else "quick" if args.quick else "full"
    sizes = dict(SIZES[size_name])
    if args.rtt:
        sizes["rtts"] = [float(x) / 1000 for x in args.rtt.split(",")]
    if args.stream_rtt:
        sizes["stream_rtts"] = [float(x) / 1000 for x in args.stream_rtt.split(",")]
    if args.instruction_events:
        sizes["instruction_events"] = [int(x) for x in args.instruction_events.split(",")]
    if args.baseline:
        os.environ["CIO_BENCH_BASELINE"] = baseline_checkout(args.baseline)
    if args.repeats:
        for k in list(sizes):
            if k.endswith("repeats"):
                sizes[k] = args.repeats
    workloads = [w for w in (args.only.split(",") if args.only else WORKLOADS) if w]
    unknown = set(workloads) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads: {sorted(unknown)}")
    wanted = args.peers.split(",") if args.peers else list(PEERS)
    peers = [p for p in wanted if p in PEERS and available(p)]
    missing = [p for p in wanted if p not in peers]

    def log(msg: str) -> None:
        print(msg, flush=True)

    if missing:
        log(f"peers not installed (run scripts/bench to install them): {', '.join(missing)}")
    h = Harness(sizes, peers, log)
    started = time.monotonic()
    machine = machine_info()
    log(f"cio_async benchmarks ({size_name}) on {machine['cpu_model']}, {machine['cores']} cores")

    default_rtt = 0.05 if 0.05 in sizes["rtts"] else sizes["rtts"][0]
    rtts = sorted(set(sizes["rtts"]) | set(sizes["stream_rtts"]) | {default_rtt})
    if "instructions" in workloads and 0.0 not in rtts:
        rtts.insert(0, 0.0)
    for rtt in rtts:
        todo = []
        if rtt in sizes["rtts"]:
            todo += [w for w in ("identify", "burst") if w in workloads]
        if rtt in sizes["stream_rtts"] and "stream" in workloads:
            todo.append("stream")
        if rtt == 0.0 and "instructions" in workloads:
            todo.append("instructions")
        if rtt == default_rtt:
            todo += [
                w for w in ("identify_same", "web", "rate_limited", "pipelines") if w in workloads
            ]
        elif rtt in sizes["rtts"] and "pipelines" in workloads:
            todo.append("pipelines_gzip")
        if not todo:
            continue
        log(f"stand-in: rtt {rtt * 1000:.0f} ms -> {', '.join(todo)}")
        with StandInProcess(rtt=rtt) as s:
            for w in todo:
                getattr(h, w)(s)
    if "micro" in workloads:
        log("in-process micro-benchmarks")
        h.micro()
    if "pipelines" in workloads:
        h.gzip_cost()
        h.pipelines_admission()

    doc = {
        "suite": "cio_async benchmarks",
        "size": size_name,
        "sizes": sizes,
        "peers": peers,
        "peers_missing": missing,
        "machine": machine,
        "note": args.note,
        "duration_s": time.monotonic() - started,
        "default_rtt": default_rtt,
        "results": h.results,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(doc, indent=1, default=str))
    md = report.markdown(doc)
    (out / "latest.md").write_text(md)
    log(f"wrote {out / 'latest.json'} and {out / 'latest.md'} in {doc['duration_s']:.0f}s")
    if args.save:
        (ROOT / "benchmarks" / "RESULTS.md").write_text(report.results_page(doc))
        log(f"wrote {ROOT / 'benchmarks' / 'RESULTS.md'}")
        try:
            from . import chart

            log(f"wrote {chart.render_snapshot()}")
        except ImportError as exc:  # matplotlib is in the dev extra
            log(f"chart not rendered ({exc}); pip install -e '.[dev]'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
