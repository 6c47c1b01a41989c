"""Frozen configuration objects: regions, the connection pool, retries, the client."""

from __future__ import annotations

import dataclasses
import os
import random
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Final, Literal

from ._errors import RETRYABLE_STATUSES, ConfigurationError

__all__ = [
    "AppConfig",
    "BatchPolicy",
    "ClientConfig",
    "PoolConfig",
    "RateLimit",
    "Region",
    "RetryPolicy",
]

DEFAULT_USER_AGENT: Final = "cio_async"


def _check_url(name: str, url: str) -> str:
    url = url.strip().rstrip("/")
    if not (url.startswith("https://") or url.startswith("http://")):
        raise ConfigurationError(f"{name} must be an http(s) URL, got {url!r}")
    return url


@dataclass(frozen=True, slots=True)
class Region:
    """A Customer.io data centre: where Track and App API calls go.

    Use ``Region.US`` or ``Region.EU``; ``Region.custom(...)`` points at any host
    (the bundled stand-in server, a proxy).
    """

    name: str
    track_url: str
    app_url: str

    US: ClassVar[Region]
    EU: ClassVar[Region]

    def __post_init__(self) -> None:
        object.__setattr__(self, "track_url", _check_url("track_url", self.track_url))
        object.__setattr__(self, "app_url", _check_url("app_url", self.app_url))

    @classmethod
    def custom(cls, track_url: str, app_url: str | None = None, name: str = "custom") -> Region:
        """A region with explicit base URLs (``app_url`` defaults to ``track_url``)."""
        return cls(name=name, track_url=track_url, app_url=app_url or track_url)

    @classmethod
    def from_name(cls, name: str) -> Region:
        """``"us"`` or ``"eu"`` (any case) to the matching region."""
        key = name.strip().lower()
        if key == "us":
            return cls.US
        if key == "eu":
            return cls.EU
        raise ConfigurationError(f"region must be 'us' or 'eu', got {name!r}")

    def with_urls(self, *, track_url: str | None = None, app_url: str | None = None) -> Region:
        """A copy with some base URLs overridden."""
        return dataclasses.replace(
            self, track_url=track_url or self.track_url, app_url=app_url or self.app_url
        )


Region.US = Region("us", "https://track.customer.io", "https://api.customer.io")
Region.EU = Region("eu", "https://track-eu.customer.io", "https://api-eu.customer.io")


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """When and how often to retry a failed request.

    Network errors, timeouts and the statuses in ``retry_statuses`` are retried with
    exponential backoff and jitter: attempt ``n`` (0-based retry) waits
    ``min(max_delay, initial_delay * multiplier**n) * U[1 - jitter/2, 1 + jitter/2]``.
    A ``Retry-After`` header wins over the computed delay when it is longer, up to
    ``max_retry_after`` seconds; a longer demand ends the retries. Retries stop after
    ``max_attempts`` attempts in all (``None``: no count, only time) or once
    ``total_timeout`` seconds have passed since the first attempt (the budget is
    checked before sleeping).
    """

    max_attempts: int | None = 4
    initial_delay: float = 0.2
    max_delay: float = 5.0
    multiplier: float = 2.0
    jitter: float = 1.0
    max_retry_after: float = 60.0
    total_timeout: float = 60.0
    retry_statuses: frozenset[int] = RETRYABLE_STATUSES

    NONE: ClassVar[RetryPolicy]

    def __post_init__(self) -> None:
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ConfigurationError("RetryPolicy.max_attempts must be at least 1 (or None)")
        for name in ("initial_delay", "max_delay", "max_retry_after", "total_timeout"):
            if getattr(self, name) < 0:
                raise ConfigurationError(f"RetryPolicy.{name} must not be negative")
        if self.multiplier < 1:
            raise ConfigurationError("RetryPolicy.multiplier must be at least 1")
        if not 0 <= self.jitter <= 1:
            raise ConfigurationError("RetryPolicy.jitter must be between 0 and 1")
        object.__setattr__(self, "retry_statuses", frozenset(self.retry_statuses))

    def backoff(self, retry: int, rnd: random.Random | None = None) -> float:
        """The computed delay before retry number ``retry`` (0 = first retry)."""
        try:
            grown = self.initial_delay * self.multiplier**retry
        except OverflowError:  # thousands of retries (a long outage, probing often)
            grown = self.max_delay
        base = min(self.max_delay, grown)
        if self.jitter:
            u = (rnd or random).random()
            base *= 1 - self.jitter / 2 + self.jitter * u
        return base

    def delay(
        self, retry: int, retry_after: float | None = None, rnd: random.Random | None = None
    ) -> float | None:
        """Seconds to wait before retry number ``retry``, or None to give up.

        ``retry_after`` (from the server) is a floor; past ``max_retry_after`` we give up
        rather than sleep for an unbounded time.
        """
        delay = self.backoff(retry, rnd)
        if retry_after is not None:
            if retry_after > self.max_retry_after:
                return None
            delay = max(delay, retry_after)
        return delay


RetryPolicy.NONE = RetryPolicy(max_attempts=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolConfig:
    """The shared aiohttp connection pool and its timeouts.

    ``max_connections`` bounds open sockets and, through a semaphore, requests in
    flight, so the pool is never oversubscribed (callers wait for a slot, they do not
    queue inside aiohttp). Timeouts are seconds; ``None`` disables one.
    """

    max_connections: int = 25
    max_connections_per_host: int = 25
    dns_cache_ttl: float = 300.0
    keepalive_timeout: float = 30.0
    connect_timeout: float | None = 5.0
    read_timeout: float | None = 10.0
    total_timeout: float | None = 30.0
    ssl_context: ssl.SSLContext | None = field(default=None, compare=False)
    verify_ssl: bool = True
    tcp_keepalive: bool = True
    tcp_keepalive_idle: int = 60
    tcp_keepalive_interval: int = 30
    tcp_keepalive_count: int = 5

    def __post_init__(self) -> None:
        if self.max_connections < 1:
            raise ConfigurationError("PoolConfig.max_connections must be at least 1")
        if self.max_connections_per_host < 0:
            raise ConfigurationError("PoolConfig.max_connections_per_host must be >= 0")
        for name in ("connect_timeout", "read_timeout", "total_timeout"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise ConfigurationError(f"PoolConfig.{name} must be positive or None")
        if self.dns_cache_ttl < 0 or self.keepalive_timeout < 0:
            raise ConfigurationError("PoolConfig TTLs must not be negative")


WhenFull = Literal["block", "drop_newest", "drop_oldest"]


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchPolicy:
    """How the delivery pipeline batches, queues and retries Track v2 operations.

    A batch closes at ``max_batch_events`` operations or ``max_batch_bytes`` bytes
    (kept under Customer.io's 500 KB request limit), or when its oldest operation
    has waited ``linger`` seconds. How many batches are sent at once is adaptive by
    default (``concurrency="adaptive"``): the limit grows while round trips stay fast
    and shrinks on 429s, 5xx, timeouts and rising latency, up to ``max_in_flight``
    (default: the connection pool's size). ``max_in_flight=N`` alone fixes it at N
    (``concurrency="fixed"``); ``Stats.concurrency_limit`` shows the current limit.
    The queue holds at most ``max_queue_events`` operations and ``max_queue_bytes``
    payload bytes; past that ``when_full`` decides: ``block`` (wait up to
    ``block_timeout`` seconds, then raise ``QueueFullError``), ``drop_newest`` or
    ``drop_oldest`` (counted and reported to ``on_drop``). ``retry`` governs resending
    a batch: by default a batch is retried until ``retry.total_timeout`` (15 minutes)
    is spent, however many attempts that takes; ``shutdown_timeout`` is the default
    flush deadline of ``aclose()``.
    """

    max_batch_events: int = 1000
    max_batch_bytes: int = 475_000
    linger: float = 0.2
    max_in_flight: int | None = None
    concurrency: Literal["adaptive", "fixed"] | None = None
    max_queue_events: int = 200_000
    max_queue_bytes: int = 64_000_000
    when_full: WhenFull = "block"
    block_timeout: float = 5.0
    retry: RetryPolicy = RetryPolicy(
        max_attempts=None,
        initial_delay=0.5,
        max_delay=30.0,
        max_retry_after=300.0,
        total_timeout=900.0,
    )
    shutdown_timeout: float = 10.0

    def __post_init__(self) -> None:
        if not self.max_batch_events >= 1:
            raise ConfigurationError("BatchPolicy.max_batch_events must be at least 1")
        if not 32_100 <= self.max_batch_bytes <= 500_000:
            raise ConfigurationError(
                "BatchPolicy.max_batch_bytes must be between 32,100 (one full operation) "
                "and 500,000 (Customer.io's request limit)"
            )
        if self.linger < 0 or self.block_timeout < 0 or self.shutdown_timeout < 0:
            raise ConfigurationError("BatchPolicy durations must not be negative")
        if self.max_in_flight is not None and self.max_in_flight < 1:
            raise ConfigurationError("BatchPolicy.max_in_flight must be at least 1 (or None)")
        if self.concurrency is None:
            fixed = self.max_in_flight is not None
            object.__setattr__(self, "concurrency", "fixed" if fixed else "adaptive")
        elif self.concurrency not in ("adaptive", "fixed"):
            raise ConfigurationError("BatchPolicy.concurrency must be 'adaptive' or 'fixed'")
        elif self.concurrency == "fixed" and self.max_in_flight is None:
            raise ConfigurationError("BatchPolicy(concurrency='fixed') needs max_in_flight")
        if self.max_queue_events < 1 or self.max_queue_bytes < 32_000:
            raise ConfigurationError(
                "BatchPolicy.max_queue_events must be >= 1 and max_queue_bytes >= 32,000"
            )
        if self.when_full not in ("block", "drop_newest", "drop_oldest"):
            raise ConfigurationError(
                "BatchPolicy.when_full must be 'block', 'drop_newest' or 'drop_oldest'"
            )


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``limit`` requests in any ``per`` seconds (a sliding window)."""

    limit: int
    per: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.limit, int) or self.limit < 1:
            raise ConfigurationError("RateLimit.limit must be a positive integer")
        if not self.per > 0:
            raise ConfigurationError("RateLimit.per must be positive")


@dataclass(frozen=True, slots=True, kw_only=True)
class AppConfig:
    """App API settings (``client.app``): client-side rate limits, the lookup cache and
    the retry rule for transactional sends and broadcast triggers.

    Customer.io limits App API requests to 10 per second, API-triggered broadcasts to
    one per 10 seconds, and lets transactional sends share the Track API's soft
    3000-per-3-seconds ingress limit. Callers wait their turn at these limiters rather
    than collect 429s; ``None`` switches one off. A 429 pauses its limiter for the
    ``Retry-After`` the server sent (at most a minute; one window when it sent none).

    ``cache_ttl`` seconds and ``cache_maxsize`` entries size the cache behind
    ``get_attributes`` and ``get_segments`` (0 disables it). Sends and triggers are
    never retried after they may have reached Customer.io (a retry could deliver
    twice) unless ``retry_unsafe`` is true; they are retried when the request surely
    never left (connection refused, DNS failure) and on 429.
    """

    rate_limit: RateLimit | None = RateLimit(10, 1.0)
    send_rate_limit: RateLimit | None = RateLimit(100, 1.0)
    broadcast_rate_limit: RateLimit | None = RateLimit(1, 10.0)
    cache_ttl: float = 60.0
    cache_maxsize: int = 1024
    retry_unsafe: bool = False

    def __post_init__(self) -> None:
        for name in ("rate_limit", "send_rate_limit", "broadcast_rate_limit"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, RateLimit):
                raise ConfigurationError(f"AppConfig.{name} must be a RateLimit or None")
        if self.cache_ttl < 0 or self.cache_maxsize < 0:
            raise ConfigurationError("AppConfig.cache_ttl and cache_maxsize must not be negative")


def _clean_secret(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be a string")
    # Secret files and env vars often carry a trailing newline.
    value = value.strip()
    if not value:
        raise ConfigurationError(f"{name} must not be blank")
    if any(c in value for c in "\r\n\x00"):
        raise ConfigurationError(f"{name} contains a control character")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientConfig:
    """Everything an ``AsyncCustomerIO`` needs; credentials never appear in its repr.

    ``site_id`` + ``track_api_key`` authorise Track API calls (HTTP Basic);
    ``app_api_key`` authorises App API calls (Bearer). Either pair may be omitted
    when that API is not used; calling it then raises ``ConfigurationError``.

    ``app`` holds the App API's rate limits, lookup cache and retry rule.
    ``dedup_ttl``/``dedup_max_entries`` size the identify dedup cache (0 disables
    it); calls slower than ``slow_call_threshold`` seconds are logged at WARNING.
    ``region_check`` asks Customer.io which region the Track credentials belong to
    when the client starts (``GET /api/v1/accounts/region``) and warns or raises if
    it is not the configured ``Region.US``/``Region.EU``.
    """

    site_id: str | None = None
    track_api_key: str | None = field(default=None, repr=False)
    app_api_key: str | None = field(default=None, repr=False)
    region: Region = Region.US
    pool: PoolConfig = PoolConfig()
    retry: RetryPolicy = RetryPolicy()
    batch: BatchPolicy = BatchPolicy()
    app: AppConfig = AppConfig()
    dedup_ttl: float = 300.0
    dedup_max_entries: int = 10_000
    slow_call_threshold: float | None = 2.0
    region_check: Literal["off", "warn", "error"] = "off"
    user_agent: str = DEFAULT_USER_AGENT
    max_redirects: int = 5

    def __post_init__(self) -> None:
        object.__setattr__(self, "site_id", _clean_secret("site_id", self.site_id))
        object.__setattr__(
            self, "track_api_key", _clean_secret("track_api_key", self.track_api_key)
        )
        object.__setattr__(self, "app_api_key", _clean_secret("app_api_key", self.app_api_key))
        if (self.site_id is None) != (self.track_api_key is None):
            raise ConfigurationError("site_id and track_api_key must be given together")
        if not isinstance(self.region, Region):
            raise ConfigurationError("region must be a Region (Region.US, Region.EU, ...)")
        if not isinstance(self.app, AppConfig):
            raise ConfigurationError("app must be an AppConfig")
        if self.max_redirects < 0:
            raise ConfigurationError("max_redirects must not be negative")
        if self.dedup_ttl < 0 or self.dedup_max_entries < 0:
            raise ConfigurationError("dedup_ttl and dedup_max_entries must not be negative")
        if self.region_check not in ("off", "warn", "error"):
            raise ConfigurationError("region_check must be 'off', 'warn' or 'error'")
        if self.slow_call_threshold is not None and self.slow_call_threshold <= 0:
            raise ConfigurationError("slow_call_threshold must be positive or None")

    def __repr__(self) -> str:
        def mask(v: str | None) -> str:
            return "None" if v is None else "'***'"

        return (
            f"ClientConfig(site_id={mask(self.site_id)}, track_api_key={mask(self.track_api_key)},"
            f" app_api_key={mask(self.app_api_key)}, region={self.region.name!r},"
            f" track_url={self.region.track_url!r}, app_url={self.region.app_url!r})"
        )

    def replace(self, **changes: object) -> ClientConfig:
        """A copy with some fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> ClientConfig:
        """Read ``CUSTOMERIO_SITE_ID``, ``CUSTOMERIO_TRACK_API_KEY``,
        ``CUSTOMERIO_APP_API_KEY`` and ``CUSTOMERIO_REGION`` (``us``/``eu``), plus the
        optional ``CUSTOMERIO_TRACK_URL`` / ``CUSTOMERIO_APP_URL`` host overrides.

        Only called when asked: nothing reads the environment behind your back.
        Keyword ``overrides`` win over the environment.
        """
        e = os.environ if env is None else env
        region = (
            Region.from_name(e["CUSTOMERIO_REGION"]) if e.get("CUSTOMERIO_REGION") else Region.US
        )
        if e.get("CUSTOMERIO_TRACK_URL") or e.get("CUSTOMERIO_APP_URL"):
            region = region.with_urls(
                track_url=e.get("CUSTOMERIO_TRACK_URL") or None,
                app_url=e.get("CUSTOMERIO_APP_URL") or None,
            )
        values: dict[str, object] = {
            "site_id": e.get("CUSTOMERIO_SITE_ID") or None,
            "track_api_key": e.get("CUSTOMERIO_TRACK_API_KEY") or None,
            "app_api_key": e.get("CUSTOMERIO_APP_API_KEY") or None,
            "region": region,
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
