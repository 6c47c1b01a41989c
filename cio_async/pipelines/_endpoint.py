"""The Pipelines wire format: hosts and regions, write-key auth, strict mode, the
``/v1/batch`` body with ``sentAt``, and optional gzip.

A wrong region is a silent 200 on this API ("you may receive a 200 OK response, but
we won't populate data"), so the region is taken from the key where the key says it
(``pk_eu_...``/``sk_us_...``, as Customer.io's own library reads them) and a key sent
to the other region's host is warned about once, at construction.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import re
import time
import warnings
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from .._config import DEFAULT_USER_AGENT, BatchPolicy, PoolConfig, RetryPolicy
from .._errors import ConfigurationError, OperationRejectedError
from ..delivery import join_items
from ..http._transport import Response, Transport

__all__ = ["PIPELINES_HOSTS", "PipelinesConfig", "PipelinesEndpoint", "PipelinesRegionWarning"]

#: Base URLs by region (Customer.io: "Server addresses").
PIPELINES_HOSTS: Final = {
    "us": "https://cdp.customer.io/v1",
    "eu": "https://cdp-eu.customer.io/v1",
}
_KEY_REGION = re.compile(r"^(?:pk|sk)_(us|eu)_")
#: Above this many body bytes gzip runs on a worker thread (zlib releases the GIL),
#: below it inline: a thread hop costs more than compressing a small body.
GZIP_INLINE_MAX: Final = 64_000


class PipelinesRegionWarning(UserWarning):
    """The write key names one region and the client is set to send to the other:
    Customer.io answers such requests 200 and keeps nothing."""


def key_region(write_key: str) -> str | None:
    """The region a write key names (``pk_eu_...`` -> ``"eu"``), or None."""
    m = _KEY_REGION.match(write_key)
    return m.group(1) if m else None


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelinesConfig:
    """Everything an ``AsyncPipelines`` needs; the write key never appears in its repr.

    ``region`` (``"us"``/``"eu"``) defaults to the one the key names, else US; ``url``
    points at another base URL instead (a proxy, the stand-in's ``pipelines_url``).
    ``strict`` sends ``X-Strict-Mode: 1`` so that invalid calls and bad keys get a
    400/401 rather than a 200 that silently drops them. ``gzip`` compresses batch
    bodies (``Content-Encoding: gzip``, level ``gzip_level``); it saves egress, costs
    CPU, and is off by default (see the README). ``context`` and ``integrations`` are
    the defaults every call carries (a call's own keys win).
    """

    write_key: str = field(repr=False)
    region: str | None = None
    url: str | None = None
    strict: bool = True
    gzip: bool = False
    gzip_level: int = 1
    context: Mapping[str, Any] | None = None
    integrations: Mapping[str, Any] | None = None
    pool: PoolConfig = field(default_factory=PoolConfig)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    batch: BatchPolicy = field(default_factory=BatchPolicy)
    slow_call_threshold: float | None = 2.0
    user_agent: str = DEFAULT_USER_AGENT

    def __post_init__(self) -> None:
        key = self.write_key
        if not isinstance(key, str) or not key.strip():
            raise ConfigurationError("write_key must be a non-blank string")
        key = key.strip()  # secret files often end with a newline
        if any(c in key for c in "\r\n\x00"):
            raise ConfigurationError("write_key contains a control character")
        object.__setattr__(self, "write_key", key)
        if self.region is not None:
            region = str(self.region).strip().lower()
            if region not in PIPELINES_HOSTS:
                raise ConfigurationError(f"region must be 'us' or 'eu', got {self.region!r}")
            object.__setattr__(self, "region", region)
        if self.url is not None:
            url = self.url.strip().rstrip("/")
            if not url.startswith(("https://", "http://")):
                raise ConfigurationError(f"url must be an http(s) URL, got {self.url!r}")
            object.__setattr__(self, "url", url)
        if not 1 <= self.gzip_level <= 9:
            raise ConfigurationError("gzip_level must be between 1 and 9")
        for name in ("context", "integrations"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Mapping):
                raise ConfigurationError(f"{name} must be a mapping")

    def __repr__(self) -> str:
        return (
            f"PipelinesConfig(write_key='***', region={self.resolved_region!r},"
            f" url={self.base_url!r})"
        )

    @property
    def resolved_region(self) -> str:
        """The region calls go to: the configured one, else the key's, else US."""
        return self.region or key_region(self.write_key) or "us"

    @property
    def base_url(self) -> str:
        """``url`` if set, else the region's host (``https://cdp.customer.io/v1``)."""
        return self.url or PIPELINES_HOSTS[self.resolved_region]

    def replace(self, **changes: object) -> PipelinesConfig:
        """A copy with some fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def region_mismatch(self) -> str | None:
        """Why the key and the destination disagree, or None when they do not (or the
        key does not say its region, or ``url`` points elsewhere)."""
        named = key_region(self.write_key)
        if named is None:
            return None
        for region, host in PIPELINES_HOSTS.items():
            if region != named and self.base_url == host:
                return (
                    f"the write key is for the {named.upper()} region but calls go to the "
                    f"{region.upper()} host {host}; Customer.io answers 200 there and keeps "
                    f"nothing (pass region={named!r} or leave region unset)"
                )
        return None

    def authorization(self) -> str:
        """HTTP Basic with the write key as user and an empty password."""
        return "Basic " + base64.b64encode(f"{self.write_key}:".encode()).decode("ascii")


_SENT_AT_TAIL: Final = len(b'2026-12-02T01:10:00.123Z"}')


def _sent_at() -> bytes:
    ms = time.time_ns() // 1_000_000
    secs, frac = divmod(ms, 1000)
    return b"%s.%03dZ" % (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)).encode(), frac)


def _gzip(data: bytes, level: int) -> bytes:
    # wbits 31: a gzip container (header and CRC), as Content-Encoding: gzip means.
    c = zlib.compressobj(level, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()


class PipelinesEndpoint:
    """``POST {base}/batch`` with the write key: the ``BatchEndpoint`` the delivery
    core's ``Sender`` uses for Pipelines. There is no per-item answer (no 207): a 400
    refuses the whole batch, and the sender splits it to isolate the bad call.

    The body is ``{"batch":[...],"sentAt":"..."}``: ``sentAt`` at the batch level, as
    Customer.io's own library sends it, stamped when the batch is built and again at
    each retry (it tells Customer.io when the batch left). Byte limits apply to this
    uncompressed body; gzip, when on, happens in ``send`` (off the loop when large).
    """

    op = "pipelines.batch"
    path = "/batch"

    def __init__(self, config: PipelinesConfig, transport: Transport) -> None:
        self._headers: dict[str, str] = {}
        if config.strict:
            self._headers["X-Strict-Mode"] = "1"
        self._gzip = config.gzip
        self._level = config.gzip_level
        self._t = transport

    def body(self, items: Sequence[bytes]) -> bytes:
        """The uncompressed request body for these payloads, in order."""
        return join_items(b'{"batch":[', items, b'],"sentAt":"%b"}' % _sent_at())

    async def send(self, body: bytes, headers: Mapping[str, str] | None) -> Response:
        """One attempt: re-stamp ``sentAt`` on a retry, compress when gzip is on. The
        transport carries the base URL and the write key (``api="cdp"``)."""
        hdrs = dict(self._headers)
        if headers:
            hdrs.update(headers)
            if "X-Retry-Count" in headers:
                body = b"".join((body[:-_SENT_AT_TAIL], _sent_at(), b'"}'))
        if self._gzip:
            if len(body) > GZIP_INLINE_MAX:
                body = await asyncio.to_thread(_gzip, body, self._level)
            else:
                body = _gzip(body, self._level)
            hdrs["Content-Encoding"] = "gzip"
        return await self._t.request(
            "cdp",
            "POST",
            self.path,
            body=body,
            op=self.op,
            retry=RetryPolicy.NONE,
            headers=hdrs,
        )

    def rejected(self, response: Response, count: int) -> dict[int, OperationRejectedError]:
        """Always empty: a Pipelines answer is for the whole batch."""
        return {}


def warn_region_mismatch(config: PipelinesConfig, stacklevel: int = 3) -> None:
    """Warn (``PipelinesRegionWarning``) when the key and the host disagree."""
    why = config.region_mismatch()
    if why is not None:
        warnings.warn(why, PipelinesRegionWarning, stacklevel=stacklevel)
