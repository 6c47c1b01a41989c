"""Small helpers shared by the harness and its worker processes: statistics, memory,
machine description, the stand-in subprocess."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import re
import resource
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


# -- statistics ---------------------------------------------------------------------------


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile (``q`` in 0..1) of a non-empty sequence."""
    if not values:
        return float("nan")
    s = sorted(values)
    pos = (len(s) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def median(values: Sequence[float]) -> float:
    return quantile(values, 0.5)


def summarize(values: Sequence[float]) -> dict[str, Any]:
    """Median and spread of repeated measurements.

    ``spread`` is (max - min) / median: with the 2-5 repetitions a run can afford on a
    shared 2-core machine, the full range says more than a standard deviation.
    """
    vals = [float(v) for v in values if v is not None and v == v]
    if not vals:
        return {"median": None, "min": None, "max": None, "n": 0, "spread": None, "values": []}
    med = median(vals)
    lo, hi = min(vals), max(vals)
    return {
        "median": med,
        "min": lo,
        "max": hi,
        "n": len(vals),
        "spread": (hi - lo) / med if med else None,
        "values": vals,
    }


# -- memory ---------------------------------------------------------------------------


def rss_bytes() -> int:
    """Current resident set size (Linux ``/proc``; falls back to the peak elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return peak_rss_bytes()


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (``ru_maxrss`` is KiB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


# -- the machine ----------------------------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in load],
        "versions": {
            name: _version(name)
            for name in (
                "cio-async",
                "aiohttp",
                "orjson",
                "customerio",
                "customerio-cdp-analytics",
                "async-customerio",
                "httpx",
                "requests",
            )
        },
        "wrk": _wrk_version(),
    }


def _wrk_version() -> str | None:
    try:
        out = subprocess.run(["wrk", "--version"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    text = (out.stdout + out.stderr).strip().splitlines()
    return text[0] if text else "wrk"


# -- the stand-in in its own process ---------------------------------------------------------


@dataclass
class StandInProcess:
    """``python -m benchmarks.standin --tls`` in a subprocess, plus its control routes.

    The stand-in runs in its own process so that its CPU time is not charged to the
    client being measured, and over TLS with a certificate made for the run so that a
    new connection costs real handshakes (plus the simulated round trips).
    """

    rtt: float = 0.05
    rate_limit: float | None = None
    url: str = ""
    ca_path: str = ""
    site_id: str = "stand-in-site"
    track_api_key: str = "stand-in-track-key"
    write_key: str = "stand-in-write-key"
    proc: subprocess.Popen[str] | None = field(default=None, repr=False)
    _ctx: ssl.SSLContext | None = field(default=None, repr=False)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def start(self, timeout: float = 30.0) -> StandInProcess:
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.standin",
            "--port",
            "0",
            "--tls",
            "--rtt",
            str(self.rtt),
            "--no-record",
            "--site-id",
            self.site_id,
            "--track-api-key",
            self.track_api_key,
        ]
        if self.rate_limit:
            cmd += ["--rate-limit", str(self.rate_limit)]
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if m := re.match(r"CA certificate: (.+)$", line.strip()):
                self.ca_path = m.group(1)
            if m := re.match(r"stand-in listening on (\S+)", line.strip()):
                self.url = m.group(1)
                break
        if not self.url or not self.ca_path:
            self.stop()
            raise RuntimeError("the stand-in did not start (is trustme installed?)")
        self._ctx = ssl.create_default_context(cafile=self.ca_path)
        return self

    def _control(self, route: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.url}/_stand-in/{route}",
            data=data,
            method="GET" if body is None else "POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, context=self._ctx, timeout=30) as resp:
            result: dict[str, Any] = json.loads(resp.read())
            return result

    def state(self) -> dict[str, Any]:
        return self._control("state")

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change the stand-in's settings (``reset``, ``rtt``, ``rate_limit``, and
        ``lean``: the benchmark-only counting mode of ``benchmarks.standin``)."""
        lean = settings.pop("lean", None)
        if lean is not None:
            self._control("lean", {"lean": bool(lean)})
        return self._control("config", settings)

    def cpu_seconds(self) -> float:
        """CPU time the stand-in process has used (user + system, Linux /proc)."""
        if self.proc is None:
            return 0.0
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def spec(self) -> dict[str, Any]:
        """What a worker needs to reach this stand-in."""
        return {
            "url": self.url,
            "ca": self.ca_path,
            "site_id": self.site_id,
            "track_api_key": self.track_api_key,
            "write_key": self.write_key,
            "rtt": self.rtt,
        }

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()
        if self.ca_path:
            with contextlib.suppress(OSError):
                os.unlink(self.ca_path)

    def __enter__(self) -> StandInProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def stand_in(rtt: float, rate_limit: float | None = None) -> Iterator[StandInProcess]:
    with StandInProcess(rtt=rtt, rate_limit=rate_limit) as s:
        yield s


def counts_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    """What the stand-in counted between two ``state()`` reads."""
    b, a = before.get("counts", {}), after.get("counts", {})
    out = {k: int(a.get(k, 0)) - int(b.get(k, 0)) for k in set(a) | set(b)}
    out["connections"] = int(after.get("connections", 0)) - int(before.get("connections", 0))
    return {k: v for k, v in out.items() if v}
