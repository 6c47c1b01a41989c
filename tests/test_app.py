"""The App API against the stand-in over loopback: sends, broadcast triggers, lookups,
validation, retry rules, fire-and-forget sends and the lookup cache."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

from cio_async import (
    APIConnectionError,
    AppConfig,
    AsyncCustomerIO,
    AuthenticationError,
    ClientClosedError,
    ConfigurationError,
    NotFoundError,
    PermissionDeniedError,
    Person,
    PersonAttributes,
    PersonIdentifiers,
    RateLimitError,
    Region,
    RequestTooLargeError,
    RetryPolicy,
    Segment,
    SendResult,
    ServerError,
    TransactionalEmail,
    TransactionalInApp,
    TransactionalInbox,
    TransactionalMessage,
    TransactionalPush,
    TransactionalSMS,
    TransactionalWhatsApp,
    UnprocessableError,
    ValidationError,
)
from cio_async.testing import RecordedRequest, StandIn

from .conftest import FAST_RETRY, ClientFactory


def app_requests(server: StandIn) -> list[RecordedRequest]:
    return [r for r in server.requests if r.api == "app"]


def only_app_request(server: StandIn) -> RecordedRequest:
    reqs = app_requests(server)
    assert len(reqs) == 1, [(r.method, r.path) for r in reqs]
    return reqs[0]


def assert_app_headers(req: RecordedRequest, server: StandIn, body: bool = True) -> None:
    assert req.headers["Authorization"] == f"Bearer {server.app_api_key}"
    assert req.headers["User-Agent"].startswith("cio_async")
    assert ("Content-Type" in req.headers) == body
    if body:
        assert req.headers["Content-Type"] == "application/json"


def assert_invalid(
    field: str, build: Callable[..., object], *args: Any, **kwargs: Any
) -> ValidationError:
    """``build(*args, **kwargs)`` raises a ValidationError naming ``field``."""
    with pytest.raises(ValidationError) as err:
        build(*args, **kwargs)
    assert err.value.field == field
    return err.value


def email(**kw: Any) -> TransactionalEmail:
    args: dict[str, Any] = {
        "transactional_message_id": 3,
        "to": "ada@example.com",
        "identifiers": "42",
    }
    args.update(kw)
    return TransactionalEmail(**args)


def people(server: StandIn, n: int, **attrs: Any) -> None:
    """Stand-in state as identifies would leave it (setup without n round trips)."""
    for i in range(n):
        server.people[f"id:{i}"] = {"id": str(i), "email": f"p{i}@example.com", **attrs}


# -- transactional sends -----------------------------------------------------------------


async def test_send_email_posts_the_body_and_parses_the_result(
    client: AsyncCustomerIO, server: StandIn
) -> None:
    tomorrow = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)
    result = await client.app.send(
        email(
            to=['"Lovelace, Ada" <ada@example.com>', "bob@example.com"],
            bcc="audit@example.com",
            from_="shop@example.com",
            subject="Your receipt",
            message_data={"order": {"id": 7}},
            attachments={"receipt.pdf": b"%PDF-1.4 hello", "note.txt": "aGk="},
            headers={"X-Order": "7"},
            tracked=False,
            send_at=tomorrow,
        )
    )
    req = only_app_request(server)
    assert (req.method, req.path) == ("POST", "/v1/send/email")
    assert_app_headers(req, server)
    body = req.json
    assert body["transactional_message_id"] == 3
    assert body["identifiers"] == {"id": "42"}
    assert body["to"] == '"Lovelace, Ada" <ada@example.com>, bob@example.com'
    assert body["bcc"] == "audit@example.com"
    assert body["from"] == "shop@example.com" and "from_" not in body
    assert body["message_data"] == {"order": {"id": 7}}
    assert base64.b64decode(body["attachments"]["receipt.pdf"]) == b"%PDF-1.4 hello"
    assert body["attachments"]["note.txt"] == "aGk="
    assert body["tracked"] is False and body["headers"] == {"X-Order": "7"}
    assert body["send_at"] == int(tomorrow.timestamp())
    assert "cc" not in body and "preheader" not in body  # unset fields are not sent
    (sent,) = server.sends
    assert isinstance(result, SendResult)
    assert result.delivery_id == sent.delivery_id and result.delivery_id
    assert abs(result.queued_at - time.time()) < 5  # type: ignore[operator]
    assert result.send_at == int(tomorrow.timestamp())


@pytest.mark.parametrize(
    ("message", "path", "fields"),
    [
        (
            TransactionalPush(
                transactional_message_id="order_shipped",
                identifiers=Person(email="ada@example.com"),
                to="last_used",
                title="Shipped",
                message="On its way",
                custom_data={"order": 7},
                custom_device={"token": "t", "platform": "ios"},
            ),
            "/v1/send/push",
            {"to": "last_used", "title": "Shipped", "custom_data": {"order": 7}},
        ),
        (
            TransactionalSMS(transactional_message_id=5, identifiers={"cio_id": "abc"}, to="+1"),
            "/v1/send/sms",
            {"to": "+1"},
        ),
        (
            TransactionalWhatsApp(transactional_message_id=6, identifiers="42", language="fr"),
            "/v1/send/whatsapp",
            {"language": "fr"},
        ),
        (
            TransactionalInApp(transactional_message_id=7, identifiers="42", queue_draft=True),
            "/v1/send/in_app",
            {"queue_draft": True},
        ),
        (
            TransactionalInbox(transactional_message_id=8, identifiers="cio_abc"),
            "/v1/send/inbox_message",
            {"identifiers": {"cio_id": "abc"}},
        ),
    ],
)
async def test_every_channel(
    client: AsyncCustomerIO,
    server: StandIn,
    message: TransactionalMessage,
    path: str,
    fields: dict[str, Any],
) -> None:
    result = await client.app.send(message)
    req = only_app_request(server)
    assert (req.method, req.path) == ("POST", path)
    assert_app_headers(req, server)
    for k, v in fields.items():
        assert req.json[k] == v
    assert req.json["transactional_message_id"] == message.transactional_message_id
    assert result.delivery_id == server.sends[0].delivery_id
    assert server.sends[0].channel == message.channel


def test_identifiers_need_exactly_one_id_email_or_cio_id() -> None:
    assert_invalid("identifiers", lambda: email(identifiers={"id": "1", "email": "a@example.com"}))
    assert_invalid("identifiers", lambda: email(identifiers=Person(phone="+15555550100")))
    assert_invalid("identifiers", lambda: email(identifiers={}))
    assert email(identifiers={"email": "a@example.com"}).person == Person(email="a@example.com")


def test_at_most_15_recipients_across_to_cc_and_bcc() -> None:
    ten = [f"t{i}@example.com" for i in range(10)]
    five = ", ".join(f"c{i}@example.com" for i in range(5))
    ok = email(to=ten, cc=five)  # 15: fine
    assert ok.to.count("@") == 10  # type: ignore[union-attr]
    err = assert_invalid("bcc", email, to=ten, cc=five, bcc="one-too-many@example.com")
    assert "15" in err.message and "16" in err.message
    # A comma inside a quoted display name does not make two recipients.
    email(to=['"Doe, Jane" <j@example.com>'] * 15)
    assert_invalid("to", lambda: email(to=[f"t{i}@example.com" for i in range(16)]))
    assert_invalid("to", lambda: email(to=[]))


def test_attachments_are_encoded_and_limited_to_2mb() -> None:
    small = email(attachments={"a.bin": b"\x00\xff"})
    assert small.attachments == {"a.bin": "AP8="}
    assert_invalid(
        "attachments", lambda: email(attachments={"big.bin": b"x" * 1_500_000})
    )  # 2,000,000 bytes in base64
    assert_invalid(
        "attachments", lambda: email(attachments={"a.bin": b"x" * 800_000, "b.bin": b"x" * 800_000})
    )
    email(attachments={"ok.bin": b"x" * 1_499_997})  # 1,999,996 bytes: under the limit
    assert_invalid("attachments['README']", lambda: email(attachments={"README": b"x"}))
    assert_invalid("attachments['a.txt']", lambda: email(attachments={"a.txt": "not base64!"}))
    assert_invalid("attachments['a.txt']", lambda: email(attachments={"a.txt": 3}))


async def test_send_at_at_most_90_days_ahead_past_is_allowed(
    client: AsyncCustomerIO, server: StandIn
) -> None:
    now = time.time()
    with pytest.raises(ValidationError) as err:
        await client.app.send(email(send_at=now + 91 * 86_400))
    assert err.value.field == "send_at"
    assert_invalid("send_at", lambda: email(send_at=(now + 1) * 1000))  # milliseconds
    assert server.requests == []
    await client.app.send(email(send_at=now + 89 * 86_400))
    result = await client.app.send(email(send_at=now - 3600))  # in the past: sends now
    assert result.send_at is None
    assert len(server.sends) == 2


def test_transactional_message_id_is_an_int_or_a_trigger_name() -> None:
    for bad in (True, None, 0, -1, "", "  ", 1.5):
        assert_invalid("transactional_message_id", email, transactional_message_id=bad)
    assert email(transactional_message_id="welcome").transactional_message_id == "welcome"


def test_other_fields_are_checked_and_named() -> None:
    assert_invalid("message_data.when", lambda: email(message_data={"when": object()}))
    assert_invalid("tracked", lambda: email(tracked="yes"))
    assert_invalid(
        "custom_data",
        lambda: TransactionalPush(transactional_message_id=1, identifiers="42", custom_data=[1]),
    )  # type: ignore[arg-type]
    assert_invalid("headers", lambda: email(headers={"X": 1}))


async def test_extra_fields_are_sent_but_cannot_shadow_named_ones(
    client: AsyncCustomerIO, server: StandIn
) -> None:
    await client.app.send(email(extra={"amp": True}))
    assert only_app_request(server).json["amp"] is True
    with pytest.raises(ValidationError) as err:
        await client.app.send(email(extra={"from": "x@example.com"}))
    assert err.value.field == "extra.from"
    with pytest.raises(ValidationError) as err:
        await client.app.send("not a message")  # type: ignore[arg-type]
    assert err.value.field == "message"


async def test_send_errors_carry_the_documented_body(
    client: AsyncCustomerIO, server: StandIn
) -> None:
    with pytest.raises(PermissionDeniedError, match="attachment type not allowed") as err:
        await client.app.send(email(attachments={"setup.exe": b"MZ"}))
    assert err.value.body == {"meta": {"error": "attachment type not allowed: setup.exe"}}
    server.fail_next(413, body={"meta": {"error": "request too large"}})
    with pytest.raises(RequestTooLargeError, match="request too large"):
        await client.app.send(email())
    assert len(app_requests(server)) == 2  # neither retried


async def test_app_calls_need_the_app_key(server: StandIn) -> None:
    async with AsyncCustomerIO(server.site_id, server.track_api_key, region=server.region) as c:
        with pytest.raises(ConfigurationError, match="app_api_key"):
            await c.app.send(email())
    async with AsyncCustomerIO(app_api_key="wrong", region=server.region) as c:
        with pytest.raises(AuthenticationError):
            await c.app.get_attributes("42")
    assert server.requests[0].status == 401


# -- retry rules -------------------------------------------------------------------------


async def test_a_send_hit_by_a_500_is_not_retried(client: AsyncCustomerIO, server: StandIn) -> None:
    server.fail_next(500, path="/v1/send/email")
    with pytest.raises(ServerError):
        await client.app.send(email())
    assert len(app_requests(server)) == 1
    assert server.sends == []


async def test_a_send_whose_answer_was_lost_is_not_retried(
    client: AsyncCustomerIO, server: StandIn
) -> None:
    # Customer.io accepted it, the answer never came: a retry would send it twice.
    server.drop_next(after_processing=True, path="/v1/send/email")
    with pytest.raises(APIConnectionError) as err:
        await client.app.send(email())
    assert not err.value.surely_not_sent
    assert len(app_requests(server)) == 1
    assert len(server.sends) == 1


async def test_a_send_refused_with_429_is_retried(client: AsyncCustomerIO, server: StandIn) -> None:
    server.fail_next(429, retry_after=0, path="/v1/send/email")
    result = await client.app.send(email())
    assert [r.status for r in app_requests(server)] == [429, 200]
    assert result.delivery_id == server.sends[0].delivery_id


async def test_a_send_that_never_connected_is_retried() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        async with AsyncCustomerIO(
            app_api_key="k", region=Region.custom(f"http://127.0.0.1:{port}"), retry=FAST_RETRY
        ) as c:
            with pytest.raises(APIConnectionError) as err:
                await c.app.send(email())
            assert err.value.surely_not_sent
            assert c.stats().retried == FAST_RETRY.max_attempts - 1


async def test_unsafe_retries_are_opt_in(make_client: ClientFactory, server: StandIn) -> None:
    c = make_client()
    server.fail_next(500, path="/v1/send/email")
    await c.app.send(email(), retry_unsafe=True)
    assert [r.status for r in app_requests(server)] == [500, 200]

    server.reset()
    c2 = make_client(app_config=AppConfig(retry_unsafe=True, broadcast_rate_limit=None))
    server.fail_next(503, path="/v1/campaigns/")
    assert await c2.app.trigger_broadcast(4) == 1
    assert [r.status for r in app_requests(server)] == [503, 200]

    server.reset()
    server.fail_next(429, retry_after=0, path="/v1/send/email")
    with pytest.raises(RateLimitError):
        await c.app.send(email(), retry=RetryPolicy.NONE)  # a per-call policy wins
    assert len(app_requests(server)) == 1


async def test_lookups_retry_like_track_calls(client: AsyncCustomerIO, server: StandIn) -> None:
    people(server, 1)
    server.fail_next(500, path="/v1/customers/0/attributes")
    server.drop_next(path="/v1/customers/0/attributes")
    found = await client.app.get_attributes("0", cached=False)
    assert found is not None and found.id == "0"
    assert len(app_requests(server)) == 3


# -- fire and forget ---------------------------------------------------------------------


async def test_send_nowait_runs_as_an_owned_task(
    make_client: ClientFactory, server: StandIn
) -> None:
    errors: list[tuple[BaseException, object]] = []
    c = make_client(on_error=lambda exc, op: errors.append((exc, op)))
    task = c.app.send_nowait(email())
    assert (await task).delivery_id == server.sends[0].delivery_id

    server.fail_next(400, body={"meta": {"error": "bad template"}}, path="/v1/send/email")
    failing = c.app.send_nowait(email())
    await server.wait_for(lambda s: c.stats().background_errors == 1)
    assert failing.done()
    ((exc, op),) = errors
    assert "bad template" in str(exc) and op is None

    with pytest.raises(ValidationError):  # bad input fails at the call, no task
        c.app.send_nowait(email(send_at=time.time() + 100 * 86_400))
    assert len(app_requests(server)) == 2


async def test_send_nowait_tasks_are_cancelled_on_close(
    make_client: ClientFactory, server: StandIn
) -> None:
    c = make_client()
    server.hold()
    try:
        task = c.app.send_nowait(email())
        await server.wait_for(lambda s: s.held == 1)
        await c.aclose(timeout=1)
        assert task.cancelled()
    finally:
        server.release()
    with pytest.raises(ClientClosedError):
        c.app.send_nowait(email())


# -- broadcasts --------------------------------------------------------------------------


async def test_trigger_to_the_default_audience(client: AsyncCustomerIO, server: StandIn) -> None:
    trigger_id = await client.app.trigger_broadcast(12, data={"headline": "Sale"})
    req = only_app_request(server)
    assert (req.method, req.path) == ("POST", "/v1/campaigns/12/triggers")
    assert_app_headers(req, server)
    assert req.json == {"data": {"headline": "Sale"}}
    assert trigger_id == 1 == server.triggers[0].trigger_id
    assert await client.app.trigger_broadcast(12) == 2
    assert app_requests(server)[1].json == {}


async def test_every_recipient_form(client: AsyncCustomerIO, server: StandIn) -> None:
    people(server, 3)
    flt = {"and": [{"segment": {"id": 3}}, {"attribute": {"field": "a", "operator": "exists"}}]}
    await client.app.trigger_broadcast(1, data={"x": 1}, recipients=flt)
    await client.app.trigger_broadcast(1, ids=["0", 1], id_ignore_missing=False)
    await client.app.trigger_broadcast(
        1,
        emails=["p2@example.com", "new@example.com"],
        email_ignore_missing=True,
        email_add_duplicates=False,
    )
    await client.app.trigger_broadcast(
        1,
        per_user_data=[{"id": "0", "data": {"v": 1}}, {"email": "p1@example.com"}],
        id_ignore_missing=True,
    )
    await client.app.trigger_broadcast(1, data_file_url="https://example.com/people.jsonl.gz")
    bodies = [r.json for r in app_requests(server)]
    assert bodies == [
        {"data": {"x": 1}, "recipients": flt},
        {"ids": ["0", "1"], "id_ignore_missing": False},
        {
            "emails": ["p2@example.com", "new@example.com"],
            "email_ignore_missing": True,
            "email_add_duplicates": False,
        },
        {
            "per_user_data": [{"id": "0", "data": {"v": 1}}, {"email": "p1@example.com"}],
            "id_ignore_missing": True,
        },
        {"data_file_url": "https://example.com/people.jsonl.gz"},
    ]
    assert [t.trigger_id for t in server.triggers] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"ids": ["1"], "emails": ["a@example.com"]}, "emails"),
        ({"recipients": {"segment": {"id": 1}}, "ids": ["1"]}, "ids"),
        ({"emails": ["a@example.com"], "id_ignore_missing": True}, "id_ignore_missing"),
        ({"ids": ["1"], "email_ignore_missing": True}, "email_ignore_missing"),
        ({"ids": ["1"], "email_add_duplicates": True}, "email_add_duplicates"),
        ({"id_ignore_missing": True}, "id_ignore_missing"),
        ({"recipients": {"segment": {"id": 1}}, "id_ignore_missing": True}, "id_ignore_missing"),
        ({"ids": [str(i) for i in range(10_001)]}, "ids"),
        ({"emails": [f"{i}@example.com" for i in range(10_001)]}, "emails"),
        ({"per_user_data": [{"id": str(i)} for i in range(10_001)]}, "per_user_data"),
        ({"ids": []}, "ids"),
        ({"ids": "42"}, "ids"),
        ({"ids": ["1", " "]}, "ids[1]"),
        ({"emails": ["not-an-email"]}, "emails[0]"),
        ({"per_user_data": [{"id": "1", "email": "a@example.com"}]}, "per_user_data[0]"),
        ({"per_user_data": [{"id": "1", "extra": 1}]}, "per_user_data[0]"),
        ({"recipients": {}}, "recipients"),
        ({"recipients": {"segments": {"id": 1}}}, "recipients"),
        ({"recipients": {"and": []}}, "recipients.and"),
        ({"recipients": {"or": [{"segment": {"id": "x"}}]}}, "recipients.or[0].segment"),
        ({"data_file_url": "ftp://example.com/x"}, "data_file_url"),
        ({"data": ["not", "a", "mapping"]}, "data"),
        ({"ids": ["1"], "id_ignore_missing": "yes"}, "id_ignore_missing"),
    ],
)
async def test_trigger_rules_are_checked_before_sending(
    client: AsyncCustomerIO, server: StandIn, kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as err:
        await client.app.trigger_broadcast(1, **kwargs)
    assert err.value.field == field
    assert server.requests == []


async def test_trigger_limits_at_the_edge_are_fine(
    client: AsyncCustomerIO, server: StandIn
) -> None:
    await client.app.trigger_broadcast(
        1, ids=[str(i) for i in range(10_000)], id_ignore_missing=True
    )
    assert len(server.triggers[0].body["ids"]) == 10_000
    for bad in (0, -1, True, "7"):
        with pytest.raises(ValidationError) as err:
            await client.app.trigger_broadcast(bad)  # type: ignore[arg-type]
        assert err.value.field == "broadcast_id"


async def test_a_422_names_the_offending_recipient_and_is_not_retried(
    client: AsyncCustomerIO, server: StandIn
) -> None:
    people(server, 1)
    with pytest.raises(UnprocessableError, match="id ghost not found") as err:
        await client.app.trigger_broadcast(5, ids=["0", "ghost"])
    assert err.value.status == 422
    assert err.value.errors == [
        {"detail": "id ghost not found", "source": {"pointer": "/ids/1"}, "status": "422"}
    ]
    assert len(app_requests(server)) == 1
    assert server.triggers == []


# -- lookups -----------------------------------------------------------------------------


async def test_get_attributes_returns_what_was_identified(
    client: AsyncCustomerIO, server: StandIn
) -> None:
    await client.v1.identify("42", {"email": "ada@example.com", "plan": "pro"})
    found = await client.app.get_attributes("42")
    req = app_requests(server)[0]
    assert (req.method, req.path, req.query) == (
        "GET",
        "/v1/customers/42/attributes",
        {"id_type": "id"},
    )
    assert_app_headers(req, server, body=False)
    assert isinstance(found, PersonAttributes)
    assert found.id == "42" and found.email == "ada@example.com" and found.cio_id
    assert found.attributes["plan"] == "pro"
    assert found.unsubscribed is False

    by_email = await client.app.get_attributes(Person(email="ada@example.com"))
    req = app_requests(server)[1]
    assert req.raw_path.split("?")[0] == "/v1/customers/ada%40example.com/attributes"
    assert req.query == {"id_type": "email"}
    assert by_email == found
    by_cio = await client.app.get_attributes(Person(cio_id=found.cio_id))
    assert app_requests(server)[2].query == {"id_type": "cio_id"}
    assert by_cio == found


async def test_get_attributes_of_nobody_is_none(client: AsyncCustomerIO, server: StandIn) -> None:
    assert await client.app.get_attributes("nobody") is None
    assert await client.app.get_attributes("a/b c") is None
    assert app_requests(server)[1].raw_path.startswith("/v1/customers/a%2Fb%20c/attributes?")


async def test_find_by_email(client: AsyncCustomerIO, server: StandIn) -> None:
    people(server, 2)
    found = await client.app.find_by_email("P1@example.com")
    req = only_app_request(server)
    assert (req.method, req.path, req.query) == (
        "GET",
        "/v1/customers",
        {"email": "P1@example.com"},
    )
    assert len(found) == 1 and isinstance(found[0], PersonIdentifiers)
    assert (found[0].id, found[0].email) == ("1", "p1@example.com")
    assert found[0].person == Person(cio_id=found[0].cio_id)
    assert await client.app.find_by_email("nobody@example.com") == []
    with pytest.raises(ValidationError) as err:
        await client.app.find_by_email("nobody")
    assert err.value.field == "email"


async def test_get_segments(client: AsyncCustomerIO, server: StandIn) -> None:
    await client.v1.identify("42", {"email": "ada@example.com"})
    await client.v1.add_to_segment(7, ["42"])
    await client.v1.add_to_segment(9, ["ada@example.com"], id_type="email")
    segments = await client.app.get_segments("42")
    req = app_requests(server)[0]
    assert (req.method, req.path, req.query) == (
        "GET",
        "/v1/customers/42/segments",
        {"id_type": "id"},
    )
    assert [s.id for s in segments] == [7, 9]
    assert segments[0] == Segment(7, "Segment 7", "manual")
    with pytest.raises(NotFoundError):
        await client.app.get_segments("nobody")


async def test_search_follows_next_page_by_page(client: AsyncCustomerIO, server: StandIn) -> None:
    people(server, 25, plan="pro")
    server.people["id:free"] = {"id": "free", "plan": "free"}
    flt = {"attribute": {"field": "plan", "operator": "eq", "value": "pro"}}
    search = client.app.search_people(flt, page_size=10)
    assert server.requests == []  # lazy: nothing until iteration
    found = [p async for p in search]
    assert sorted(int(p.id or -1) for p in found) == list(range(25))
    reqs = app_requests(server)
    assert [r.query for r in reqs] == [
        {"limit": "10"},
        {"limit": "10", "start": "10"},
        {"limit": "10", "start": "20"},
    ]
    assert all((r.method, r.path) == ("POST", "/v1/customers") for r in reqs)
    assert all(r.json == {"filter": flt} for r in reqs)
    assert search.pages == 3
    assert_app_headers(reqs[0], server)


async def test_search_stops_fetching_when_the_caller_stops(
    client: AsyncCustomerIO, server: StandIn
) -> None:
    people(server, 30)
    first = await client.app.search_people({"not": {"segment": {"id": 1}}}, page_size=5).collect(3)
    assert len(first) == 3
    assert len(app_requests(server)) == 1
    assert await client.app.search_people({"segment": {"id": 404}}).collect() == []


async def test_search_arguments_are_checked(client: AsyncCustomerIO, server: StandIn) -> None:
    for size in (0, 1001, True):
        assert_invalid(
            "page_size", client.app.search_people, {"segment": {"id": 1}}, page_size=size
        )
    assert_invalid("filter", lambda: client.app.search_people({}))
    assert_invalid(
        "filter.attribute", lambda: client.app.search_people({"attribute": {"field": "x"}})
    )
    assert server.requests == []


async def test_batch_attributes_are_chunked_by_100(
    client: AsyncCustomerIO, server: StandIn
) -> None:
    people(server, 240)
    found = await client.app.get_attributes_batch([*map(str, range(250))])
    reqs = app_requests(server)
    assert [len(r.json["ids"]) for r in reqs] == [100, 100, 50]
    assert all(
        (r.method, r.path, r.query) == ("POST", "/v1/customers/attributes", {"id_type": "id"})
        for r in reqs
    )
    assert sorted(int(p.id or -1) for p in found) == list(range(240))  # unknown ones left out
    by_email = await client.app.get_attributes_batch(["p3@example.com"], id_type="email")
    assert [p.id for p in by_email] == ["3"]
    assert app_requests(server)[-1].query == {"id_type": "email"}


async def test_batch_arguments_are_checked(client: AsyncCustomerIO, server: StandIn) -> None:
    cases: list[tuple[Any, dict[str, Any], str]] = [
        ([], {}, "ids"),
        ("42", {}, "ids"),
        (["1", ""], {}, "ids[1]"),
        (["1"], {"id_type": "phone"}, "id_type"),
    ]
    for ids, kw, field in cases:
        with pytest.raises(ValidationError) as err:
            await client.app.get_attributes_batch(ids, **kw)
        assert err.value.field == field
    assert server.requests == []


async def test_a_failing_chunk_stops_the_batch(client: AsyncCustomerIO, server: StandIn) -> None:
    server.fail_next(403, path="/v1/customers/attributes", body={"meta": {"error": "scope"}})
    with pytest.raises(PermissionDeniedError):
        await client.app.get_attributes_batch([str(i) for i in range(300)])


# -- the lookup cache --------------------------------------------------------------------


async def test_a_second_lookup_makes_no_request(client: AsyncCustomerIO, server: StandIn) -> None:
    people(server, 1)
    first = await client.app.get_attributes("0")
    assert first is not None
    first.attributes["mutated"] = True  # a caller's change must not leak into the cache
    second = await client.app.get_attributes("0")
    assert second is not None and second.identifiers == first.identifiers
    assert "mutated" not in second.attributes
    await client.app.get_segments("0")
    await client.app.get_segments("0")
    assert len(app_requests(server)) == 2
    info = client.app.cache_info()
    assert (info["attributes"].hits, info["attributes"].misses) == (1, 1)
    await client.app.get_attributes("0", cached=False)
    assert len(app_requests(server)) == 3


async def test_concurrent_lookups_share_one_request(
    client: AsyncCustomerIO, server: StandIn
) -> None:
    people(server, 1)
    results = await asyncio.gather(*(client.app.get_attributes("0") for _ in range(5)))
    assert len({r.id for r in results if r}) == 1
    assert len(app_requests(server)) == 1


CHANGES = {
    "identify": lambda c, p: c.identify(p, {"plan": "max"}, wait=True),
    "delete": lambda c, p: c.delete(p, wait=True),
    "suppress": lambda c, p: c.suppress(p, wait=True),
    "unsuppress": lambda c, p: c.unsuppress(p, wait=True),
    "merge": lambda c, p: c.merge(p, "43", wait=True),
    "v1.identify": lambda c, p: c.v1.identify(p, {"plan": "max"}),
    "v1.delete": lambda c, p: c.v1.delete(p),
    "v1.suppress": lambda c, p: c.v1.suppress(p),
    "identify_nowait": lambda c, p: c.flush() if c.identify_nowait(p, {"plan": "x"}) else None,
}


@pytest.mark.parametrize("change", sorted(CHANGES))
async def test_a_change_through_this_client_invalidates_the_cache(
    client: AsyncCustomerIO, server: StandIn, change: str
) -> None:
    await client.v1.identify("42", {"email": "ada@example.com", "plan": "pro"})
    await client.v1.identify("7", {"plan": "other"})
    assert await client.app.get_attributes("42") is not None
    await client.app.get_segments("42")
    await client.app.get_attributes("7")
    lookups = len(app_requests(server))
    await CHANGES[change](client, "42")
    await client.app.get_attributes("42")
    with contextlib.suppress(NotFoundError):  # deleted people have no segments
        await client.app.get_segments("42")
    await client.app.get_attributes("7")  # someone else: still cached
    assert len(app_requests(server)) == lookups + 2


async def test_a_change_under_another_identifier_invalidates_too(
    client: AsyncCustomerIO, server: StandIn
) -> None:
    await client.v1.identify("42", {"email": "Ada@Example.com", "plan": "pro"})
    found = await client.app.get_attributes(Person(email="Ada@Example.com"))
    assert found is not None and found.attributes["plan"] == "pro"
    await client.identify("42", {"plan": "max"}, wait=True)  # by id, not by email
    again = await client.app.get_attributes(Person(email="Ada@Example.com"))
    assert again is not None and again.attributes["plan"] == "max"
    await client.app.get_attributes("42")
    # Emails match without regard to case: a change under the lower-case address
    # drops the lookup made by id (whose answer carried the address).
    await client.v1.suppress(Person(email="ada@example.com"))
    await client.app.get_attributes("42")
    assert len(app_requests(server)) == 4


async def test_cache_expires_and_can_be_disabled(
    make_client: ClientFactory, server: StandIn
) -> None:
    people(server, 1)
    short = make_client(app_config=AppConfig(cache_ttl=0.05))
    await short.app.get_attributes("0")
    await server.wait_for(lambda s: short.app.cache_info()["attributes"].currsize == 0)
    await short.app.get_attributes("0")
    assert len(app_requests(server)) == 2

    off = make_client(app_config=AppConfig(cache_ttl=0))
    await off.app.get_attributes("0")
    await off.app.get_attributes("0")
    assert len(app_requests(server)) == 4
    assert off.app.cache_info() == {}
    off.app._person_changed(Person("0"))  # harmless without a cache


async def test_cache_clear(client: AsyncCustomerIO, server: StandIn) -> None:
    people(server, 1)
    await client.app.get_attributes("0")
    client.app.cache_clear()
    await client.app.get_attributes("0")
    assert len(app_requests(server)) == 2


async def test_not_found_is_not_cached(client: AsyncCustomerIO, server: StandIn) -> None:
    assert await client.app.get_attributes("42") is None
    server.people["id:42"] = {"id": "42"}
    assert await client.app.get_attributes("42") is not None


async def test_close_cancels_lookups_in_flight(make_client: ClientFactory, server: StandIn) -> None:
    c = make_client()
    server.hold()
    try:
        lookup = asyncio.ensure_future(c.app.get_attributes("42"))
        await server.wait_for(lambda s: s.held == 1)
        await c.aclose(timeout=1)
        with pytest.raises(ClientClosedError):
            await lookup
        assert c.app.cache_info()["attributes"].currsize == 0
    finally:
        server.release()
    with pytest.raises(ClientClosedError):
        await c.app.get_attributes("42")
    with pytest.raises(ClientClosedError):
        await c.app.send(email())
    with pytest.raises(ClientClosedError):
        c.app.search_people({"segment": {"id": 1}})
