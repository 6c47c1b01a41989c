"""Client lifecycle: lazy start, aclose, use after close, borrowed sessions, warnings."""

from __future__ import annotations

import asyncio
import gc
import threading
import warnings

import pytest

from cio_async import AsyncCustomerIO, ClientClosedError, ConfigurationError, Region
from cio_async.testing import StandIn

from .conftest import ClientFactory


def test_construction_needs_no_loop_and_does_no_io() -> None:
    # No running loop here, and the host does not exist: construction must not care.
    c = AsyncCustomerIO("site", "key", region=Region.custom("https://nowhere.invalid"))
    assert not c.closed
    assert c._transport.session is None
    del c
    gc.collect()  # never started: no ResourceWarning (filterwarnings=error would fail)


async def test_aclose_is_idempotent_and_closes_owned_session(
    make_client: ClientFactory, server: StandIn
) -> None:
    c = make_client()
    await c.v1.identify("42", {"a": 1})
    session = c._transport.session
    assert session is not None
    first = await c.aclose()
    second = await c.aclose()
    assert first is second
    assert session.closed
    assert c.closed


async def test_use_after_close_raises(make_client: ClientFactory) -> None:
    c = make_client()
    await c.aclose()
    with pytest.raises(ClientClosedError):
        await c.track("42", "e")
    with pytest.raises(ClientClosedError):
        c.track_nowait("42", "e")
    with pytest.raises(ClientClosedError):
        await c.v1.identify("42", {"a": 1})
    with pytest.raises(ClientClosedError):
        await c.identify("42", {})

    async def noop() -> None:
        return None

    with pytest.raises(ClientClosedError):
        c.spawn(noop())
    with pytest.raises(ClientClosedError):
        async with c:
            pass


async def test_unclosed_client_warns(server: StandIn) -> None:
    c = AsyncCustomerIO(**server.client_kwargs())
    await c.v1.identify("42", {"a": 1})
    # What the garbage collector would run for a client that was never closed:
    with pytest.warns(ResourceWarning, match="unclosed <AsyncCustomerIO"):
        c.__del__()
    await c.aclose()
    c.__del__()  # closed: silent (filterwarnings=error would fail the test otherwise)


async def test_context_manager(server: StandIn) -> None:
    async with AsyncCustomerIO(**server.client_kwargs()) as c:
        await c.identify("42", {"a": 1})
    assert c.closed
    assert len(server.ops("person", "identify")) == 1  # flushed on exit


async def test_bound_to_one_loop(make_client: ClientFactory) -> None:
    c = make_client()
    await c.v1.get_region()
    errors: list[BaseException] = []

    def other_loop() -> None:
        try:
            asyncio.run(c.v1.get_region())
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=other_loop)
    t.start()
    t.join()
    assert len(errors) == 1
    assert isinstance(errors[0], RuntimeError)
    assert "another event loop" in str(errors[0])


def test_config_and_credentials_are_exclusive() -> None:
    from cio_async import ClientConfig

    with pytest.raises(ConfigurationError):
        AsyncCustomerIO("s", "k", config=ClientConfig())
    with pytest.raises(ConfigurationError):
        AsyncCustomerIO("site-only")
    with pytest.raises(ConfigurationError):
        AsyncCustomerIO(session="not a session")  # type: ignore[arg-type]


async def test_missing_credentials_fail_at_the_call(server: StandIn) -> None:
    async with AsyncCustomerIO(app_api_key="app", region=server.region) as c:
        with pytest.raises(ConfigurationError, match="track_api_key"):
            await c.track("42", "e")
        with pytest.raises(ConfigurationError, match="track_api_key"):
            await c.v1.identify("42", {})
    assert server.requests == []


async def _track_once(client: AsyncCustomerIO) -> str:
    return await client.track("p1", "e")


async def _loop_errors(client: AsyncCustomerIO) -> list[str]:
    errors = []
    for call in (client.track("p1", "e"), client.page("p1", "/x")):
        try:
            await call
        except RuntimeError as exc:
            errors.append(str(exc))
    return errors


def test_a_client_left_open_by_one_asyncio_run_refuses_the_next_loop() -> None:
    # The fast path admits on the loop's thread without asking asyncio for the
    # running loop (a system call per event); a loop that ended under an open client
    # must still make the next loop's calls fail loudly, not queue into a dead loop.
    c = AsyncCustomerIO("site", "key", region=Region.custom("http://127.0.0.1:9"))
    assert asyncio.run(_track_once(c))  # admitted; the loop then ends without aclose()
    errors = asyncio.run(_loop_errors(c))
    assert ["another event loop" in e for e in errors] == [True, True]
    assert c.track_nowait("p1", "e")  # sync, off any loop: queued for the loop's return
    with pytest.warns(ResourceWarning, match="unclosed"):
        c.__del__()  # what the garbage collector says: this client was never closed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        del c
        gc.collect()
