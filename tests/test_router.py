"""Regional routing across workspaces, and region discovery."""

from __future__ import annotations

import logging

import pytest

from cio_async import (
    AsyncCustomerIO,
    ClientConfig,
    ConfigurationError,
    Object,
    Person,
    Region,
    WorkspaceRouter,
)
from cio_async.testing import StandIn

from .conftest import FAST_BATCH, FAST_RETRY

EU_PEOPLE = {"fr-1", "de-2"}


def client_for(server: StandIn) -> AsyncCustomerIO:
    return AsyncCustomerIO(**server.client_kwargs(), retry=FAST_RETRY, batch=FAST_BATCH)


async def test_routes_each_person_to_their_workspace() -> None:
    async with StandIn(site_id="us-site") as us, StandIn(site_id="eu-site", region="eu") as eu:
        router = WorkspaceRouter(
            {"us": client_for(us), "eu": client_for(eu)},
            resolver=lambda p: "eu" if p.value in EU_PEOPLE else "us",
        )
        async with router:
            await router.identify("fr-1", {"lang": "fr"})
            await router.track("fr-1", "purchase")
            await router.identify("ny-1", {"lang": "en"})
            router.track_nowait("de-2", "login")
            await router.page("ny-1", "/home")
            await router.track("ny-1", "forced", workspace="eu")  # explicit wins
            await router.send(Person("de-2").suppress())
            await router.send(Object(1, "acme").identify({"n": 1}))  # default: first
            flushed = await router.flush()
            assert set(flushed) == {"us", "eu"}
        assert router.workspaces["us"].closed
        assert router.workspaces["eu"].closed
    us_people = {o.identifiers.get("id") for o in us.ops("person")}
    eu_people = {o.identifiers.get("id") for o in eu.ops("person")}
    assert us_people == {"ny-1"}
    assert eu_people == {"fr-1", "de-2", "ny-1"}
    assert [e.name for e in eu.events() if e.identifiers["id"] == "ny-1"] == ["forced"]
    assert len(us.ops("object")) == 1
    # Each workspace saw only its own credentials.
    assert all(r.status != 401 for r in us.requests + eu.requests)


async def test_router_validation() -> None:
    with pytest.raises(ConfigurationError):
        WorkspaceRouter({})
    a, b = AsyncCustomerIO("s", "k"), AsyncCustomerIO("s2", "k2")
    with pytest.raises(ConfigurationError, match="resolver or a default"):
        WorkspaceRouter({"a": a, "b": b})
    router = WorkspaceRouter({"a": a, "b": b}, resolver=lambda p: "c")
    with pytest.raises(ConfigurationError, match="unknown workspace 'c'"):
        router.workspace_for("1")
    with pytest.raises(ConfigurationError, match="unknown workspace 'z'"):
        router.workspace_for("1", "z")
    assert WorkspaceRouter({"a": a, "b": b}, default="b").workspace_for("1") == "b"
    await router.aclose()


async def test_region_check_warns_or_raises(caplog: pytest.LogCaptureFixture) -> None:
    async with StandIn(region="eu") as server:
        creds = {
            "site_id": server.site_id,
            "track_api_key": server.track_api_key,
            "region": Region.US.with_urls(track_url=server.url),  # "US", answering "eu"
        }
        caplog.set_level(logging.WARNING, logger="cio_async")
        async with AsyncCustomerIO(config=ClientConfig(**creds, region_check="warn")):
            pass
        assert "belong to the EU region" in caplog.text
        strict = AsyncCustomerIO(config=ClientConfig(**creds, region_check="error"))
        with pytest.raises(ConfigurationError, match=r"Region\.EU"):
            await strict.start()
        await strict.aclose()
        eu = Region.EU.with_urls(track_url=server.url)
        matching = AsyncCustomerIO(config=ClientConfig(**{**creds, "region": eu}))
        info = await matching.check_region()
        assert info.region == "eu"
        await matching.aclose()
        assert sum(r.path == "/api/v1/accounts/region" for r in server.requests) == 3
