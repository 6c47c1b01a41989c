"""Configuration that cannot silently go wrong: environment overrides never mix a
stand-in with production, a client without credentials is refused at construction,
and a failed ``start()`` leaves nothing running."""

from __future__ import annotations

import asyncio
import gc
import warnings

import pytest

from cio_async import (
    AsyncCustomerIO,
    ClientConfig,
    ConfigurationError,
    CustomerIO,
    Region,
    TransactionalEmail,
)
from cio_async.testing import StandIn

from .conftest import FAST_RETRY

# -- 16. one URL override moves both APIs ------------------------------------------------


async def test_a_track_url_override_sends_app_api_calls_to_the_same_place(
    server: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k in ("CUSTOMERIO_APP_URL", "CUSTOMERIO_REGION", "CUSTOMERIO_SITE_ID"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("CUSTOMERIO_TRACK_URL", server.url)
    monkeypatch.setenv("CUSTOMERIO_TRACK_API_KEY", server.track_api_key)
    monkeypatch.setenv("CUSTOMERIO_SITE_ID", server.site_id)
    monkeypatch.setenv("CUSTOMERIO_APP_API_KEY", server.app_api_key)
    client = AsyncCustomerIO.from_env(retry=FAST_RETRY)
    # Checked before any request: production must never be contacted from a test.
    assert client.config.region.app_url == server.url
    async with client:
        await client.app.send(
            TransactionalEmail(transactional_message_id=7, to="a@example.com", identifiers="42")
        )
    assert len(server.sends) == 1


@pytest.mark.parametrize("var", ["CUSTOMERIO_TRACK_URL", "CUSTOMERIO_APP_URL"])
def test_one_customerio_url_override_alone_is_refused_naming_both(var: str) -> None:
    env = {"CUSTOMERIO_SITE_ID": "s", "CUSTOMERIO_TRACK_API_KEY": "k", var: "https://x.customer.io"}
    with pytest.raises(ConfigurationError) as err:
        ClientConfig.from_env(env)
    assert "CUSTOMERIO_TRACK_URL" in str(err.value)
    assert "CUSTOMERIO_APP_URL" in str(err.value)


def test_both_url_overrides_are_kept_as_given() -> None:
    env = {
        "CUSTOMERIO_APP_API_KEY": "a",
        "CUSTOMERIO_TRACK_URL": "http://127.0.0.1:1",
        "CUSTOMERIO_APP_URL": "http://127.0.0.1:2",
    }
    region = ClientConfig.from_env(env).region
    assert (region.track_url, region.app_url) == ("http://127.0.0.1:1", "http://127.0.0.1:2")


# -- 17. no credentials: refused at construction ---------------------------------------


def test_from_env_without_credentials_fails_naming_the_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for k in (
        "CUSTOMERIO_SITE_ID",
        "CUSTOMERIO_TRACK_API_KEY",
        "CUSTOMERIO_APP_API_KEY",
        "CUSTOMERIO_REGION",
        "CUSTOMERIO_TRACK_URL",
        "CUSTOMERIO_APP_URL",
    ):
        monkeypatch.delenv(k, raising=False)
    for build in (AsyncCustomerIO.from_env, ClientConfig.from_env):
        with pytest.raises(ConfigurationError) as err:
            build()
        for name in ("CUSTOMERIO_SITE_ID", "CUSTOMERIO_TRACK_API_KEY", "CUSTOMERIO_APP_API_KEY"):
            assert name in str(err.value)
    with pytest.raises(ConfigurationError, match="CUSTOMERIO_TRACK_API_KEY"):
        ClientConfig.from_env({"CUSTOMERIO_SITE_ID": "s"})
    # Either API alone is enough, and overrides count as configuration.
    assert ClientConfig.from_env({"CUSTOMERIO_APP_API_KEY": "a"}).app_api_key == "a"
    assert ClientConfig.from_env({}, site_id="s", track_api_key="k").site_id == "s"


# -- 18. region_check in the constructor; a failed start leaks nothing -----------------


def test_the_constructors_accept_region_check() -> None:
    assert AsyncCustomerIO("s", "k", region_check="warn").config.region_check == "warn"
    # Constructing (without using) makes no request; it used to raise TypeError.
    CustomerIO("s", "k", region_check="error").close()
    with pytest.raises(ConfigurationError):
        AsyncCustomerIO("s", "k", region_check="loud")  # type: ignore[arg-type]


async def test_a_failed_start_closes_everything_it_started() -> None:
    async with StandIn(region="eu") as server:
        # Configured for US (pointed at the stand-in), but the account is in the EU.
        us = Region("us", server.url, server.url)
        client = AsyncCustomerIO(
            server.site_id, server.track_api_key, region=us, region_check="error"
        )
        with pytest.raises(ConfigurationError, match="EU region"):
            await client.start()
        assert client.closed
        assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("cio_async")]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            del client
            gc.collect()
        unclosed = [w for w in caught if issubclass(w.category, ResourceWarning)]
        assert unclosed == [], [str(w.message) for w in unclosed]
