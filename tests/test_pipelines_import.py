"""``cio-async import --api pipelines``: NDJSON and CSV lines through AsyncPipelines."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import anyio.from_thread
import orjson
import pytest

from cio_async.cli._import import run_import
from cio_async.cli._import_lines import LineOptions
from cio_async.cli._import_options import EXIT_OK, EXIT_REJECTED, EXIT_USAGE, ImportOptions
from cio_async.testing import StandIn


@pytest.fixture
def threaded_server() -> Iterator[StandIn]:
    with anyio.from_thread.start_blocking_portal("asyncio") as portal:
        server = StandIn()
        portal.call(server.start)
        try:
            yield server
        finally:
            portal.call(server.close)


def _run(path: Path, server: StandIn | None, **kw: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    env = {}
    if server is not None:
        env = {"CUSTOMERIO_WRITE_KEY": server.cdp_write_key}
        env["CUSTOMERIO_PIPELINES_URL"] = server.pipelines_url
    opts = ImportOptions(path=str(path), api="pipelines", quiet=True, **kw)  # type: ignore[arg-type]
    code = run_import(opts, env=env, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_ndjson_segment_style_and_track_style_lines(
    tmp_path: Path, threaded_server: StandIn
) -> None:
    src = tmp_path / "calls.ndjson"
    lines = [
        {"type": "identify", "userId": "42", "traits": {"plan": "pro"}},
        {"type": "track", "userId": "42", "event": "purchase", "properties": {"n": 1}},
        {"type": "group", "userId": "42", "groupId": "acme"},
        {"type": "alias", "userId": "42", "previousId": "anon-9"},
        {"type": "track", "id": "7", "name": "signup", "data": {"plan": "free"}},
        {"type": "page", "email": "a@example.com", "url": "/pricing"},
        {"type": "delete", "id": "8"},
        {"type": "track", "userId": "42"},  # no event: rejected at the line
    ]
    src.write_bytes(b"\n".join(orjson.dumps(x) for x in lines) + b"\n")
    code, out, _ = _run(src, threaded_server)
    assert code == EXIT_REJECTED, out
    calls = threaded_server.pipelines.calls
    assert [(c.type, c.user_id) for c in calls] == [
        ("identify", "42"),
        ("track", "42"),
        ("group", "42"),
        ("alias", "42"),
        ("track", "7"),
        ("page", "a@example.com"),
        ("track", "8"),
    ]
    assert calls[4].body["event"] == "signup" and calls[4].body["properties"] == {"plan": "free"}
    assert calls[5].body["name"] == "/pricing"
    assert calls[6].body["event"] == "User Deleted"
    errors = (tmp_path / "calls.ndjson.errors.ndjson").read_bytes().splitlines()
    assert [orjson.loads(e)["line"] for e in errors] == [8]
    assert orjson.loads(errors[0])["field"] == "event"
    # A re-run with --restart repeats the derived messageIds: nothing is stored twice.
    code, _, _ = _run(src, threaded_server, restart=True)
    assert code == EXIT_REJECTED
    assert len(threaded_server.pipelines.calls) == 7
    assert threaded_server.counts["duplicate_events_ignored"] == 7


def test_csv_rows_become_identify_calls(tmp_path: Path, threaded_server: StandIn) -> None:
    src = tmp_path / "people.csv"
    src.write_text("id,plan,timestamp\n1,pro,1700000000\n2,free,2024-01-02T03:04:05Z\n")
    code, out, _ = _run(src, threaded_server, lines=LineOptions(kind="identify"))
    assert code == EXIT_OK, out
    calls = threaded_server.pipelines.calls
    assert [c.body["traits"] for c in calls] == [{"plan": "pro"}, {"plan": "free"}]
    assert [c.body["timestamp"] for c in calls] == [
        "2023-11-14T22:13:20.000Z",
        "2024-01-02T03:04:05.000Z",
    ]


def test_missing_write_key_is_a_usage_error(tmp_path: Path) -> None:
    src = tmp_path / "calls.ndjson"
    src.write_text('{"type": "identify", "userId": "1"}\n')
    code, _, err = _run(src, None)
    assert code == EXIT_USAGE and "CUSTOMERIO_WRITE_KEY" in err


def test_dry_run_checks_lines_without_a_key(tmp_path: Path) -> None:
    src = tmp_path / "calls.ndjson"
    src.write_text('{"type": "identify", "userId": "1"}\n{"type": "track", "userId": "1"}\n')
    code, out, _ = _run(src, None, dry_run=True)
    assert code == EXIT_REJECTED and "1 valid (1 identify), 1 invalid" in out
