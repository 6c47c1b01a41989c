"""Connecting to Redis: one place that builds clients from URLs and names the errors
that mean "Redis is unreachable" (as opposed to a bug in a command)."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .._errors import ConfigurationError

#: Errors that mean Redis cannot be reached right now (down, restarting, network).
UNREACHABLE: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    asyncio.TimeoutError,
)

#: A client built from a URL gives up quickly: every user of it has a fallback (a
#: local limiter, failing open, a producer buffer) that is better than a stalled loop.
#: redis-py's default retries ten times with backoff, which would hold a sender for
#: seconds each call while Redis is down. One immediate retry covers a connection
#: that went stale across a Redis restart.
_TIMEOUT = 2.0


def connect(target: aredis.Redis | str, **options: Any) -> tuple[aredis.Redis, bool]:
    """``(client, owned)``: the caller's client as is, or a new one for a URL (owned:
    the caller closes it)."""
    if isinstance(target, str):
        kwargs: dict[str, Any] = {
            "socket_timeout": _TIMEOUT,
            "socket_connect_timeout": _TIMEOUT,
            "retry": Retry(NoBackoff(), 1),
        }
        kwargs.update(options)
        return aredis.Redis.from_url(target, **kwargs), True
    if isinstance(target, aredis.Redis):
        return target, False
    raise ConfigurationError("redis must be a redis.asyncio.Redis client or a redis:// URL")


def hash_tag(*parts: str) -> str:
    """``{a:b}``: keys sharing it live in one Redis Cluster slot (scripts touch both)."""
    return "{" + ":".join(parts) + "}"
