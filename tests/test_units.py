"""Pure units: configuration, regions, env loading, retry policy, Retry-After, ULIDs,
error mapping and the public surface."""

from __future__ import annotations

import dataclasses
import email.utils
import random
import time

import pytest

from cio_async import (
    APIStatusError,
    AsyncCustomerIO,
    BadRequestError,
    BatchPolicy,
    ClientConfig,
    ConfigurationError,
    PoolConfig,
    RateLimitError,
    Region,
    RetryPolicy,
    ServerError,
)
from cio_async._encode import new_ulid
from cio_async._errors import error_for_status
from cio_async.http._retry import parse_retry_after


def test_regions() -> None:
    assert Region.US.track_url == "https://track.customer.io"
    assert Region.US.app_url == "https://api.customer.io"
    assert Region.EU.track_url == "https://track-eu.customer.io"
    assert Region.EU.app_url == "https://api-eu.customer.io"
    assert Region.from_name(" EU ") is Region.EU
    custom = Region.custom("http://127.0.0.1:1/")
    assert custom.track_url == custom.app_url == "http://127.0.0.1:1"
    assert Region.EU.with_urls(app_url="http://x").track_url == Region.EU.track_url
    with pytest.raises(ConfigurationError):
        Region.from_name("asia")
    with pytest.raises(ConfigurationError):
        Region.custom("ftp://x")


def test_configs_are_frozen_and_validated() -> None:
    cfg = ClientConfig(site_id=" site\n", track_api_key="key\n")
    assert cfg.site_id == "site"  # secrets read from files often end in a newline
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.site_id = "x"  # type: ignore[misc]
    assert cfg.replace(region=Region.EU).region is Region.EU
    for bad in (
        lambda: ClientConfig(site_id="s"),
        lambda: ClientConfig(site_id="s", track_api_key="  "),
        lambda: ClientConfig(app_api_key="a\x00b"),
        lambda: RetryPolicy(max_attempts=0),
        lambda: RetryPolicy(jitter=2),
        lambda: PoolConfig(max_connections=0),
        lambda: PoolConfig(read_timeout=0),
        lambda: BatchPolicy(max_batch_bytes=600_000),
        lambda: BatchPolicy(when_full="explode"),  # type: ignore[arg-type]
        lambda: BatchPolicy(max_in_flight=0),
    ):
        with pytest.raises(ConfigurationError):
            bad()


def test_from_env_reads_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "CUSTOMERIO_SITE_ID": "s1",
        "CUSTOMERIO_TRACK_API_KEY": "k1",
        "CUSTOMERIO_APP_API_KEY": "a1",
        "CUSTOMERIO_REGION": "eu",
    }
    cfg = ClientConfig.from_env(env)
    assert (cfg.site_id, cfg.track_api_key, cfg.app_api_key) == ("s1", "k1", "a1")
    assert cfg.region is Region.EU
    cfg2 = ClientConfig.from_env({**env, "CUSTOMERIO_TRACK_URL": "http://127.0.0.1:9"})
    assert cfg2.region.track_url == "http://127.0.0.1:9"
    # The App API follows the override: a stand-in is never mixed with production.
    assert cfg2.region.app_url == "http://127.0.0.1:9"
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert AsyncCustomerIO().config.site_id is None  # the constructor never reads env
    client = AsyncCustomerIO.from_env(max_redirects=2)
    assert client.config.site_id == "s1"
    assert client.config.max_redirects == 2


def test_retry_policy_backoff() -> None:
    p = RetryPolicy(initial_delay=0.2, max_delay=5, multiplier=2, jitter=0)
    assert [p.backoff(n) for n in range(7)] == [0.2, 0.4, 0.8, 1.6, 3.2, 5, 5]
    jittered = RetryPolicy(initial_delay=1, jitter=1)
    rnd = random.Random(1)
    values = [jittered.backoff(0, rnd) for _ in range(200)]
    assert min(values) >= 0.5
    assert max(values) <= 1.5
    assert len(set(values)) > 100
    assert p.delay(0, retry_after=3) == 3  # Retry-After is a floor
    assert p.delay(5, retry_after=1) == 5
    assert p.delay(0, retry_after=61) is None  # beyond max_retry_after: give up


def test_parse_retry_after() -> None:
    assert parse_retry_after("5") == 5
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-3") == 0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = time.time()
    date = email.utils.formatdate(now + 30, usegmt=True)
    parsed = parse_retry_after(date, now=now)
    assert parsed is not None
    assert 29 <= parsed <= 31
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert parse_retry_after(past, now=now) == 0


def test_error_mapping() -> None:
    e = error_for_status(429, {"errors": [{"detail": "slow down"}]}, retry_after=2)
    assert isinstance(e, RateLimitError)
    assert e.retryable
    assert e.retry_after == 2
    assert "slow down" in str(e)
    assert isinstance(error_for_status(400, {"meta": {"error": "bad"}}), BadRequestError)
    assert not error_for_status(400, None).retryable
    s = error_for_status(503, "oops")
    assert isinstance(s, ServerError)
    assert s.retryable
    assert not error_for_status(501, None).retryable
    assert error_for_status(524, None).retryable
    other = error_for_status(418, None)
    assert type(other) is APIStatusError
    assert not other.retryable


def test_ulids_are_well_formed_unique_and_time_ordered() -> None:
    ids = [new_ulid() for _ in range(2000)]
    assert len(set(ids)) == 2000
    assert all(len(i) == 26 and i[0] in "01234567" for i in ids)
    ms = int(time.time() * 1000)
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    decoded = 0
    for ch in ids[-1][:10]:
        decoded = decoded * 32 + alphabet.index(ch)
    assert abs(decoded - ms) < 5000


def test_memory_backend_takes_by_count_and_bytes() -> None:
    from cio_async import MemoryBackend

    q = MemoryBackend()
    for i in range(10_000):
        q.append(b"x" * (10 + i % 3))
    out = q.take(100, 10**9)
    assert len(out.items) == 100
    assert out.nbytes == sum(map(len, out.items))
    assert out.ids is None
    out = q.take(1000, 120)  # the byte budget binds: 10-12 bytes + a comma each
    assert sum(len(i) + 1 for i in out.items) <= 120 < sum(len(i) + 1 for i in out.items) + 13
    taken = 100 + len(out.items)
    assert q.pop_oldest() is not None
    rest = q.drain()
    assert len(rest) == 10_000 - taken - 1
    assert q.take(10, 10).items == []
    assert q.pop_oldest() is None
    big = MemoryBackend()
    big.append(b"y" * 50)
    assert big.take(10, 20).items == [b"y" * 50]  # one oversize item still goes out alone
