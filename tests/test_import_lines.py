"""``cio-async import`` in pieces: line schema, CSV records, event ids, state files.

The end-to-end behaviour is in test_cli.py; these pin the rules a person relies on
when preparing a file, without a subprocess each.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from cio_async import ValidationError
from cio_async.cli._import_lines import (
    CsvColumns,
    HeaderError,
    LineOptions,
    build,
    line_event_id,
    parse_ndjson,
)
from cio_async.cli._import_options import UsageError
from cio_async.cli._import_read import Record, csv_records, input_lines, ndjson_records
from cio_async.cli._import_settle import Checkpoint, State, Window, prepare_errors_file

CROCKFORD = set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")


def op_of(obj: dict[str, Any], **opts: Any) -> dict[str, Any]:
    return build(obj, LineOptions(**opts), lambda: "01HZY00000000000000000DRVD").to_dict()


def field_of(obj: dict[str, Any], **opts: Any) -> tuple[str, str]:
    with pytest.raises(ValidationError) as err:
        op_of(obj, **opts)
    return err.value.field, err.value.message


# -- event ids ---------------------------------------------------------------------------


def test_derived_event_ids_are_ulid_shaped_and_deterministic() -> None:
    a = line_event_id(b"salt", 7, b'{"x": 1}\n')
    assert len(a) == 26
    assert set(a) <= CROCKFORD
    assert a[0] <= "7"  # fits 128 bits, as a ULID must
    assert a == line_event_id(b"salt", 7, b'{"x": 1}\n')
    others = {
        line_event_id(b"other", 7, b'{"x": 1}\n'),  # another input
        line_event_id(b"salt", 8, b'{"x": 1}\n'),  # another line
        line_event_id(b"salt", 7, b'{"x": 2}\n'),  # an edited line
    }
    assert a not in others and len(others) == 3


# -- the NDJSON schema -------------------------------------------------------------------


def test_each_kind_builds_its_operation() -> None:
    ident = op_of({"type": "identify", "email": "a@example.com", "attributes": {"plan": "x"}})
    assert (ident["action"], ident["identifiers"], ident["attributes"]) == (
        "identify",
        {"email": "a@example.com"},
        {"plan": "x"},
    )
    ev = op_of({"type": "event", "id": 42, "name": "paid", "data": {"amount": 3}})
    assert (ev["action"], ev["identifiers"], ev["attributes"], ev["id"]) == (
        "event",
        {"id": "42"},
        {"amount": 3},
        "01HZY00000000000000000DRVD",
    )
    page = op_of({"type": "page", "identifiers": {"cio_id": "cio_a1"}, "name": "/x"})
    assert (page["action"], page["identifiers"], page["name"]) == ("page", {"cio_id": "a1"}, "/x")
    screen = op_of({"id": "1", "attributes": {"k": "v"}}, kind="screen", event="Home")
    assert (screen["action"], screen["name"], screen["attributes"]) == (
        "screen",
        "Home",
        {"k": "v"},
    )
    assert op_of({"type": "delete", "phone": "+15555550100"})["action"] == "delete"
    assert op_of({"type": "identify", "id": "1", "update_only": True})["attributes"] == {
        "_update": True
    }


def test_event_id_and_timestamps_from_the_line() -> None:
    own = op_of({"type": "track", "id": "1", "name": "e", "event_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV"})
    assert own["id"] == "01ARZ3NDEKTSV4RRFFQ69G5FAV"
    for ts, expected in [
        (1700000000, 1700000000),
        ("1700000000", 1700000000),
        ("2024-01-01T00:00:00Z", 1704067200),
        ("2024-01-01T01:00:00+01:00", 1704067200),
        ("2024-01-01 00:00:00", 1704067200),  # no offset: UTC
    ]:
        assert op_of({"type": "track", "id": "1", "name": "e", "timestamp": ts})["timestamp"] == (
            expected
        )


@pytest.mark.parametrize(
    ("obj", "field", "words"),
    [
        ({"id": "1"}, "type", "is required"),
        ({"type": "fly", "id": "1"}, "type", "got 'fly'"),
        ({"type": "identify", "id": "1", "atributes": {}}, "atributes", "is not a field"),
        ({"type": "identify"}, "id", "exactly one of id, email, cio_id or phone"),
        ({"type": "identify", "id": "1", "email": "a@b.c"}, "id", "(got id, email)"),
        ({"type": "identify", "identifiers": {"nick": "x"}}, "identifiers", "'nick'"),
        ({"type": "identify", "id": " "}, "id", "must not be blank"),
        ({"type": "identify", "phone": "555"}, "phone", "E.164"),
        ({"type": "identify", "id": "1", "attributes": [1]}, "attributes", "an array"),
        ({"type": "identify", "id": "1", "update_only": "yes"}, "update_only", "true or false"),
        ({"type": "track", "id": "1"}, "name", "--event NAME"),
        ({"type": "track", "id": "1", "name": "e", "data": 3}, "data", "a number"),
        (
            {"type": "track", "id": "1", "name": "e", "data": {}, "attributes": {}},
            "data",
            "not both",
        ),
        ({"type": "track", "id": "1", "name": "e", "event_id": 5}, "event_id", "a string"),
        ({"type": "track", "id": "1", "name": "e", "event_id": ""}, "event_id", "blank"),
        ({"type": "track", "id": "1", "name": "e", "timestamp": "soon"}, "timestamp", "ISO 8601"),
        ({"type": "track", "id": "1", "name": "n" * 101}, "name", "the limit is 100"),
        ({"type": "page", "id": "1"}, "url", "is required"),
        ({"type": "page", "id": "1", "url": "/a", "name": "/b"}, "url", "not both"),
        (
            {"type": "track", "id": "1", "name": "e", "data": {"x": "y" * 40_000}},
            "operation",
            "32000",
        ),
    ],
)
def test_bad_lines_name_the_field(obj: dict[str, Any], field: str, words: str) -> None:
    got_field, message = field_of(obj)
    assert got_field == field
    assert words in message


def test_ndjson_lines_that_are_not_objects() -> None:
    with pytest.raises(ValidationError, match="not valid JSON"):
        parse_ndjson(b"{oops}\n")
    with pytest.raises(ValidationError, match=r"jq -c '\.\[\]'"):
        parse_ndjson(b"[\n")
    with pytest.raises(ValidationError, match="got an array; put one object per line"):
        parse_ndjson(b'[{"id": 1}]\n')
    assert parse_ndjson(b'{"id": "1"}\r\n') == {"id": "1"}


# -- CSV -------------------------------------------------------------------------------


def test_csv_columns_for_identify() -> None:
    cols = CsvColumns(["id", " email ", "plan", "timestamp"], LineOptions())
    assert cols.line_object(["7", "a@example.com", "", "1700000000"]) == {
        "type": "identify",
        "id": "7",
        "timestamp": "1700000000",
        "attributes": {"email": "a@example.com"},  # plan was empty: left out
    }
    assert cols.line_object(["7"]) == {"type": "identify", "id": "7"}  # short row
    with pytest.raises(ValidationError, match="has 5 fields; the header has 4"):
        cols.line_object(["7", "", "", "", "extra"])
    with pytest.raises(ValidationError) as err:
        cols.line_object(["", "a@example.com"])
    assert err.value.field == "id"


def test_csv_columns_for_events_and_custom_identifier_columns() -> None:
    named = CsvColumns(["user", "name", "sku"], LineOptions(kind="track", id_column="user"))
    assert named.line_object(["x@example.com", "bought", "A1"]) == {
        "type": "track",
        "email": "x@example.com",  # read like the SDK reads a string
        "name": "bought",
        "data": {"sku": "A1"},
    }
    assert named.line_object(["cio_f00", "bought", ""])["cio_id"] == "cio_f00"
    fixed = CsvColumns(["id", "name"], LineOptions(kind="screen", event="Home"))
    assert fixed.line_object(["1", "Ada"]) == {
        "type": "screen",
        "id": "1",
        "name": "Home",
        "data": {"name": "Ada"},  # with --event, a name column is data
    }
    gone = CsvColumns(["email", "plan"], LineOptions(kind="delete"))
    assert gone.line_object(["a@example.com", "x"]) == {"type": "delete", "email": "a@example.com"}


@pytest.mark.parametrize(
    ("header", "options", "words"),
    [
        (["id", "id"], LineOptions(), "twice"),
        (["id", ""], LineOptions(), "column 2 of the header has no name"),
        (["name"], LineOptions(), "no identifier column"),
        (["id"], LineOptions(id_column="user"), "--id-column 'user' is not in the header"),
        (["id", "sku"], LineOptions(kind="track"), "needs a name column or --event NAME"),
        (["id"], LineOptions(kind="page"), "needs a url column"),
    ],
)
def test_unusable_csv_headers(header: list[str], options: LineOptions, words: str) -> None:
    with pytest.raises(HeaderError, match=words):
        CsvColumns(header, options)


def test_csv_records_keep_line_numbers_and_bytes_across_quoted_newlines() -> None:
    data = b'\xef\xbb\xbfid,note\r\n1,"two\r\nlines"\r\n\r\n2,"bad"quote\r\n3,caf\xe9\r\n4,ok'
    recs = list(csv_records(input_lines(data[:10], io.BytesIO(data[10:])), ","))
    assert [(r.line, r.next_line) for r in recs] == [(1, 2), (2, 4), (4, 5), (5, 6), (6, 7), (7, 8)]
    assert recs[0].fields == ["id", "note"]  # the byte order mark is gone
    assert recs[1].fields == ["1", "two\r\nlines"]
    assert recs[1].raw == b'1,"two\r\nlines"\r\n'
    assert recs[2].fields == []
    assert recs[3].error is not None and "not valid CSV" in recs[3].error
    assert recs[4].error == "is not valid UTF-8 (line 6)"
    assert recs[5].fields == ["4", "ok"] and recs[5].raw == b"4,ok"
    assert b"".join(r.raw for r in recs) == data


def test_input_lines_join_the_head_and_the_rest() -> None:
    data = b"".join(b'{"n": %d}\n' % i for i in range(100))
    for cut in (0, 1, 7, 8, 9, 500, len(data)):
        lines = list(input_lines(data[:cut], io.BytesIO(data[cut:])))
        assert b"".join(lines) == data
        assert len(lines) == 100
    recs = list(ndjson_records(iter([b"a\n", b"b"])))
    assert [(r.line, r.next_line, r.raw) for r in recs] == [(1, 2, b"a\n"), (2, 3, b"b")]


# -- state files -------------------------------------------------------------------------


def test_errors_file_keeps_only_entries_before_the_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "in.ndjson.errors.ndjson"
    entries = [{"line": n, "message": "m"} for n in (3, 9, 12)]
    path.write_bytes(b"".join(json.dumps(e).encode() + b"\n" for e in entries) + b'{"line": 1')
    prepare_errors_file(str(path), keep_before=10)
    assert [json.loads(x)["line"] for x in path.read_text().splitlines()] == [3, 9]
    prepare_errors_file(str(path), keep_before=1)  # a fresh run
    assert not path.exists()


def test_unusable_checkpoints_say_how_to_go_on(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    assert Checkpoint.load(str(path)) is None
    path.write_text("{not json")
    with pytest.raises(UsageError, match="--restart"):
        Checkpoint.load(str(path))
    path.write_text('{"version": 99}')
    with pytest.raises(UsageError, match="version 99"):
        Checkpoint.load(str(path))
    path.write_text('{"version": 1, "next_line": 3}')
    with pytest.raises(UsageError, match="not one cio-async wrote"):
        Checkpoint.load(str(path))


def test_the_checkpoint_never_passes_an_unsettled_line() -> None:
    window = Window(None, max_records=10)
    recs = [Record(n, n + 1, f"line {n}\n".encode()) for n in (1, 2, 3)]
    first, second, third = (window.add(r) for r in recs)
    window.settle(second, State.DELIVERED)  # out of order: line 1 still pending
    assert window.line == 1 and window.offset == 0
    window.settle(first, State.INVALID)
    assert window.line == 3 and window.offset == len(b"line 1\nline 2\n")
    window.settle(third, State.FAILED)  # not delivered: a re-run sends it again
    assert window.line == 3 and not window.finished(eof=True)
    assert dict(window.totals) == {"invalid": 1, "delivered": 1}


def test_a_resume_checks_the_input_before_the_checkpoint() -> None:
    done = Window(None, max_records=10)
    for n in (1, 2):
        done.settle(done.add(Record(n, n + 1, f"line {n}\n".encode())), State.DELIVERED)
    checkpoint = Checkpoint(
        next_line=done.line,
        offset=done.offset,
        prefix_sha256=done.prefix.hexdigest(),
        format="ndjson",
        options={},
        totals=dict(done.totals),
        complete=False,
    )
    for first_line, same in ((b"line 1\n", True), (b"line X\n", False)):
        again = Window(checkpoint, max_records=10)
        assert again.resume_line == 3 and not again.verified
        for n, raw in ((1, first_line), (2, b"line 2\n")):
            again.settle(again.add(Record(n, n + 1, raw)), State.EARLIER)
        assert again.verify_resume(Record(3, 4, b"line 3\n")) is same
        assert again.totals["delivered"] == 2  # earlier lines count once, in the checkpoint
