"""``WorkspaceRouter`` offers every call of ``AsyncCustomerIO`` (routed), and each one
reaches the right workspace on real stand-ins."""

from __future__ import annotations

import pytest

from cio_async import (
    AsyncCustomerIO,
    ConfigurationError,
    Delivery,
    Object,
    Person,
    ValidationError,
    WorkspaceRouter,
)
from cio_async.testing import StandIn

from .conftest import FAST_BATCH, FAST_RETRY

EU_PEOPLE = {"fr-1", "de-2", "fr-9"}
#: Per-client concerns with no routing meaning: use ``router["eu"]`` for these.
NOT_ROUTED = {"spawn", "check_region", "from_env", "config"}


def public_names(cls: type) -> set[str]:
    return {n for n in dir(cls) if not n.startswith("_")}


def test_router_has_every_public_call_of_the_client() -> None:
    missing = public_names(AsyncCustomerIO) - NOT_ROUTED - public_names(WorkspaceRouter)
    assert missing == set()


def client_for(server: StandIn) -> AsyncCustomerIO:
    return AsyncCustomerIO(**server.client_kwargs(), retry=FAST_RETRY, batch=FAST_BATCH)


def ids(server: StandIn, action: str) -> list[str | None]:
    return [o.identifiers.get("id") for o in server.ops("person", action)]


async def test_each_added_call_goes_to_the_right_workspace() -> None:
    async with StandIn(site_id="us-site") as us, StandIn(site_id="eu-site", region="eu") as eu:
        router = WorkspaceRouter(
            {"us": client_for(us), "eu": client_for(eu)},
            resolver=lambda p: "eu" if p.value in EU_PEOPLE else "us",
        )
        async with router:
            await router.merge("fr-1", "fr-9", wait=True)
            await router.delete_device("fr-1", "tok", wait=True)
            await router.delete_relationships("ny-1", [Object(1, "acme")], wait=True)
            assert router.page_nowait("de-2", "/p")
            assert router.screen_nowait("ny-1", "Home")
            router.send_nowait(Person("de-2").event("opened"))
            fut = await router.submit(Person("ny-1").event("bought"))
            await fut
            fut = await router.submit(Delivery("d1").event("opened", "tok"), workspace="eu")
            await fut
            await router.track_anonymous("invite", {"recipient": "a@example.com"})
            await router.v1.report_push_event("d2", "delivered", "tok")
            await router.v2.entity(Person("x-1").delete())
            assert router.app is router.workspaces["us"].app
            with pytest.raises(ValidationError) as exc:
                await router.merge("fr-1", "ny-1")  # would cross workspaces
            assert exc.value.field == "secondary"
            await router.merge("fr-1", "ny-1", workspace="eu", wait=True)  # explicit
            with pytest.raises(ConfigurationError):
                router.send_nowait("not an operation")  # type: ignore[arg-type]
            await router.flush()
            assert not router.closed
        assert router.closed
    assert [o.body["primary"] for o in eu.ops("person", "merge")] == [
        {"id": "fr-1"},
        {"id": "fr-1"},
    ]
    assert us.ops("person", "merge") == []
    assert ids(eu, "delete_device") == ["fr-1"]
    assert ids(us, "delete_relationships") == ["ny-1"]
    assert ids(eu, "page") == ["de-2"]
    assert ids(us, "screen") == ["ny-1"]
    assert [e.name for e in eu.ops("person", "event")] == ["opened"]
    assert [e.name for e in us.ops("person", "event")] == ["bought"]
    assert len(eu.ops("delivery")) == 1
    assert [o.type for o in us.ops("anonymous")] == ["anonymous"]
    assert [o.action for o in us.ops("push")] == ["delivered"]  # v1: the default (us)
    assert ids(us, "delete") == ["x-1"]
