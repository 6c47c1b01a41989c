"""The blocking ``CustomerIO`` offers what ``AsyncCustomerIO`` offers: the same calls,
typed ``v1``/``v2``/``app`` with the same methods, and ``app.send_nowait`` that does
not wait for the send."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any, get_type_hints

import anyio.from_thread
import pytest
from anyio.from_thread import BlockingPortal

from cio_async import (
    AppAPI,
    AsyncCustomerIO,
    BatchPolicy,
    CustomerIO,
    Object,
    Person,
    RetryPolicy,
    SendResult,
    SyncAppAPI,
    SyncTrackV1,
    SyncTrackV2,
    TrackV1,
    TrackV2,
    TransactionalEmail,
    ValidationError,
)
from cio_async.testing import StandIn

FAST = BatchPolicy(linger=0.01, retry=RetryPolicy(max_attempts=4, initial_delay=0.001))
#: Async-only: ``aclose`` is ``close`` here, and ``spawn`` runs coroutines.
ASYNC_ONLY = {"aclose", "spawn"}


def public(cls: type) -> set[str]:
    return {n for n in dir(cls) if not n.startswith("_")}


def test_sync_client_has_every_public_call_of_the_async_client() -> None:
    assert public(AsyncCustomerIO) - ASYNC_ONLY - public(CustomerIO) == set()
    assert "close" in public(CustomerIO)


@pytest.mark.parametrize(
    ("async_cls", "sync_cls"),
    [(TrackV1, SyncTrackV1), (TrackV2, SyncTrackV2), (AppAPI, SyncAppAPI)],
)
def test_v1_v2_app_have_the_same_methods_and_parameters(async_cls: type, sync_cls: type) -> None:
    # Public methods and properties of the async part (attributes such as limiters
    # are internal plumbing, not calls).
    calls = {
        n
        for n in public(async_cls)
        if callable(getattr(async_cls, n)) or isinstance(getattr(async_cls, n), property)
    }
    assert calls - public(sync_cls) == set()
    for n in calls:
        if isinstance(getattr(async_cls, n), property):
            continue
        a = list(inspect.signature(getattr(async_cls, n)).parameters.values())
        s = list(inspect.signature(getattr(sync_cls, n)).parameters.values())
        assert [(p.name, p.kind, p.default) for p in a] == [
            (p.name, p.kind, p.default) for p in s
        ], n


def test_v1_v2_app_are_typed() -> None:
    hints = get_type_hints(CustomerIO)
    assert hints["v1"] is SyncTrackV1
    assert hints["v2"] is SyncTrackV2
    assert hints["app"] is SyncAppAPI


@pytest.fixture
def served() -> Iterator[tuple[StandIn, BlockingPortal]]:
    with anyio.from_thread.start_blocking_portal("asyncio") as portal:
        server = StandIn()
        portal.call(server.start)
        try:
            yield server, portal
        finally:
            portal.call(server.close)


def test_the_added_calls_work_from_plain_threads(served: tuple[StandIn, BlockingPortal]) -> None:
    server, _ = served
    with CustomerIO(**server.client_kwargs(), batch=FAST) as cio:
        cio.start()
        assert cio.identify_nowait("42", {"plan": "pro"})
        assert cio.track_nowait("42", "a")
        assert cio.page_nowait("42", "/p")
        assert cio.screen_nowait("42", "S")
        cio.send_nowait(Person("42").event("b"))
        cio.add_device("42", "tok", "ios", wait=True)
        cio.delete_device("42", "tok", wait=True)
        cio.add_relationships("42", [Object(1, "acme")], wait=True)
        cio.delete_relationships("42", [Object(1, "acme")], wait=True)
        fut = cio.submit(Person("42").event("c"))
        assert fut.result(timeout=10) is None
        eid = cio.track_anonymous("invite", {"recipient": "a@example.com"})
        assert cio.check_region().region == "us"
        assert cio.config.region.track_url == server.url
        cio.v2.entity(Person("43").identify({"n": 1}))
        cio.v1.report_push_event("d1", "opened", "tok")
        with pytest.raises(ValidationError):
            cio.v1.unsubscribe(" ")
        assert cio.flush(timeout=5).complete
    actions = [(o.type, o.action) for o in server.ops()]
    for expected in [
        ("person", "identify"),
        ("person", "add_device"),
        ("person", "delete_device"),
        ("person", "add_relationships"),
        ("person", "delete_relationships"),
        ("anonymous", "event"),
        ("push", "opened"),
    ]:
        assert expected in actions
    names = [e.name for e in server.events()]
    assert {"a", "/p", "S", "b", "c"} <= set(names)
    assert eid in {e.event_id for e in server.events()}


def test_app_send_nowait_returns_before_the_send_completes(
    served: tuple[StandIn, BlockingPortal],
) -> None:
    server, portal = served
    message = TransactionalEmail(transactional_message_id=3, to="a@example.com", identifiers="42")
    with CustomerIO(**server.client_kwargs(), batch=FAST) as cio:
        portal.call(server.hold)  # the stand-in answers nothing until released
        got: list[Any] = []
        caller = threading.Thread(target=lambda: got.append(cio.app.send_nowait(message)))
        caller.start()
        caller.join(timeout=10)  # a bound for the failure case, not synchronisation
        returned = not caller.is_alive()
        portal.call(server.release)
        caller.join()
        # It returned while the request was held: it did not wait for the answer.
        assert returned
        (fut,) = got
        assert isinstance(fut, Future)
        result = fut.result(timeout=10)
        with pytest.raises(ValidationError):
            cio.app.send_nowait(
                TransactionalEmail(transactional_message_id=0, to="x", identifiers="42")
            )
    assert isinstance(result, SendResult)
    assert len(server.sends) == 1
