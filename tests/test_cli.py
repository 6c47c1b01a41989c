"""The ``cio-async`` command end to end: real subprocesses against a real stand-in.

The stand-in runs in the test's own loop on 127.0.0.1 and the command is pointed at
it through ``CUSTOMERIO_TRACK_URL``; ``asyncio.create_subprocess_exec`` keeps the
loop (and so the stand-in) serving while the command runs. Progress is observed
through the stand-in (``wait_for``) or the command's own output, never by sleeping.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cio_async import AsyncCustomerIO, Region
from cio_async.testing import StandIn

pytestmark = pytest.mark.timeout(60)


@dataclass
class Run:
    code: int
    out: str
    err: str


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTOMERIO_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def env_for(server: StandIn, **extra: str) -> dict[str, str]:
    env = base_env()
    env.update(
        CUSTOMERIO_SITE_ID=server.site_id,
        CUSTOMERIO_TRACK_API_KEY=server.track_api_key,
        CUSTOMERIO_TRACK_URL=server.url,
    )
    env.update(extra)
    return env


async def spawn(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None, stdin: bool = False
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cio_async",
        *args,
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env if env is not None else base_env()),
        cwd=cwd,
    )


async def finish(proc: asyncio.subprocess.Process, input: bytes | None = None) -> Run:
    out, err = await asyncio.wait_for(proc.communicate(input), 30)
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


async def cio(
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    input: bytes | None = None,
) -> Run:
    proc = await spawn(*args, env=env, cwd=cwd, stdin=input is not None)
    return await finish(proc, input)


def write_ndjson(path: Path, lines: Iterable[Any]) -> Path:
    with path.open("w") as f:
        for line in lines:
            f.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
    return path


def events_file(path: Path, n: int) -> Path:
    return write_ndjson(
        path,
        ({"type": "track", "id": f"u{i % 50}", "name": "e", "data": {"n": i}} for i in range(n)),
    )


def received_n(server: StandIn) -> Counter[int]:
    return Counter(e.body["attributes"]["n"] for e in server.events("e"))


def errors_of(path: Path) -> list[dict[str, Any]]:
    """The errors file's entries, by line (it is written in the order lines settle)."""
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    return sorted(entries, key=lambda e: e["line"])


# -- demo and serve-stand-in -----------------------------------------------------------


async def test_demo_runs_and_reports_exactly_once() -> None:
    run = await cio("demo", "--events", "2000")
    assert run.code == 0, run.err
    assert "OK: every operation delivered exactly once." in run.out
    assert "streaming 2000 operations" in run.out


async def test_serve_stand_in_serves_until_sigint() -> None:
    proc = await spawn("serve-stand-in", "--port", "0")
    assert proc.stdout is not None
    first = (await asyncio.wait_for(proc.stdout.readline(), 15)).decode()
    match = re.match(r"stand-in listening on (http://127\.0\.0\.1:\d+)$", first.strip())
    assert match, first
    async with AsyncCustomerIO(
        "stand-in-site", "stand-in-track-key", region=Region.custom(match.group(1))
    ) as client:
        await client.track("42", "from_the_test", wait=True)
    proc.send_signal(signal.SIGINT)
    run = await finish(proc)
    assert run.code == 0, run.err
    assert "'person.event': 1" in run.out


# -- import --------------------------------------------------------------------------


async def test_import_delivers_good_lines_once_and_reports_bad_ones(tmp_path: Path) -> None:
    lines: list[Any] = [
        {"type": "identify", "id": "1", "attributes": {"plan": "pro"}, "timestamp": 1700000000},
        {"type": "track", "email": "ada@example.com", "name": "purchase", "data": {"n": 1}},
        "this is not json",  # line 3
        {"type": "track", "id": "2", "data": {"n": 2}},  # line 4: no name
        {
            "type": "page",
            "cio_id": "a301",
            "url": "/pricing",
            "event_id": "01HZY0000000000000000000PG",
        },
        "",  # line 6: blank, skipped
        {"type": "identify", "phone": "+15555550100", "attributes": {"a": 1}},  # line 7: 207
        {"type": "screen", "id": "3", "name": "Settings", "timestamp": "2024-01-02T03:04:05Z"},
        {"type": "identify", "id": "4", "attributes": {"big": "x" * 1001}},  # line 9: too big
        {"type": "delete", "id": "5"},
        {"type": "track", "id": "6", "name": "signed_up", "colour": "red"},  # line 11
    ]
    src = write_ndjson(tmp_path / "mixed.ndjson", lines)
    async with StandIn() as server:
        server.reject_operation = lambda op: (
            ("identifiers", "phone is not an identifier in this workspace")
            if "phone" in op.get("identifiers", {})
            else None
        )
        run = await cio("import", str(src), env=env_for(server))
        assert run.code == 1, run.err  # finished, some lines rejected
        got = Counter(f"{o.type}.{o.action}" for o in server.operations)
        assert got == {
            "person.identify": 1,
            "person.event": 1,
            "person.page": 1,
            "person.screen": 1,
            "person.delete": 1,
        }
        assert server.counts["duplicate_events_ignored"] == 0
        page = server.ops(action="page")[0]
        assert page.event_id == "01HZY0000000000000000000PG"  # passed through
        screen = server.ops(action="screen")[0]
        assert screen.body["timestamp"] == 1704164645
        assert all(len(e.event_id or "") == 26 for e in server.events())

    errors = errors_of(tmp_path / "mixed.ndjson.errors.ndjson")
    assert [(e["line"], e["stage"], e["field"]) for e in errors] == [
        (3, "validation", "line"),
        (4, "validation", "name"),
        (7, "customerio", "identifiers"),
        (9, "validation", "attributes.big"),
        (11, "validation", "colour"),
    ]
    refused = errors[2]
    assert refused["reason"] == "invalid"
    assert refused["message"] == "phone is not an identifier in this workspace"
    assert json.loads(refused["input"]) == lines[6]  # the original line
    assert errors[0]["input"] == "this is not json"
    assert "line 4: name: is required" in run.err
    assert "line 7: refused by Customer.io" in run.err
    assert "5 delivered, 5 rejected (4 invalid, 1 refused by Customer.io)" in run.out
    checkpoint = json.loads((tmp_path / "mixed.ndjson.checkpoint.json").read_text())
    assert checkpoint["complete"] is True
    assert checkpoint["next_line"] == 12


async def test_csv_from_a_file_and_ndjson_from_stdin(tmp_path: Path) -> None:
    csv_file = tmp_path / "signups.csv"
    csv_file.write_text(
        "email,name,plan,timestamp\n"
        'ada@example.com,"Ada\nLovelace",pro,1700000000\n'  # a value over two lines
        "grace@example.com,Grace,,2024-01-01T00:00:00Z\n"
        ",Nobody,free,\n"  # line 5: no person
    )
    async with StandIn() as server:
        run = await cio(
            "import", str(csv_file), "--kind", "track", "--event", "signed_up", env=env_for(server)
        )
        assert run.code == 1, run.err
        events = server.events("signed_up")
        assert [e.identifiers for e in events] == [
            {"email": "ada@example.com"},
            {"email": "grace@example.com"},
        ]
        assert events[0].body["attributes"] == {"name": "Ada\nLovelace", "plan": "pro"}
        assert events[1].body["attributes"] == {"name": "Grace"}  # empty cells left out
        assert events[1].body["timestamp"] == 1704067200
        (error,) = errors_of(tmp_path / "signups.csv.errors.ndjson")
        assert (error["line"], error["field"]) == (5, "email")
        assert error["input"] == ",Nobody,free,"

        server.reset()
        ndjson = b'{"type": "identify", "id": "s1", "attributes": {"from": "stdin"}}\n' * 3
        run = await cio("import", "-", "--quiet", env=env_for(server), input=ndjson, cwd=tmp_path)
        assert run.code == 0, run.err
        assert len(server.ops("person", "identify")) == 3
        assert "3 delivered, 0 rejected" in run.out


async def test_stdin_lines_go_out_as_they_arrive_and_sigterm_stops(tmp_path: Path) -> None:
    # More than the 64 KB that identify the input, then the pipe stays open.
    n = 1500
    data = b"".join(
        b'{"type": "track", "id": "p", "name": "e", "data": {"n": %d, "pad": "%s"}}\n'
        % (i, b"x" * 20)
        for i in range(n)
    )
    assert len(data) > 64 * 1024
    checkpoint = tmp_path / "stdin.checkpoint.json"
    async with StandIn() as server:
        proc = await spawn(
            "import", "-", "--checkpoint", str(checkpoint), env=env_for(server), stdin=True
        )
        assert proc.stdin is not None
        proc.stdin.write(data)
        await proc.stdin.drain()
        # Everything arrives without the input ending: no line waits for a chunk to fill.
        await server.wait_for(lambda s: len(s.events()) == n, timeout=15)
        proc.send_signal(signal.SIGTERM)
        # Keep stdin open until the import took the signal: finish() closes it, and an
        # input that ended first is a finished import (exit 0), not an interrupted one.
        assert proc.stderr is not None
        seen = b""
        while b"SIGTERM: stopping" not in seen:
            line = await asyncio.wait_for(proc.stderr.readline(), 15)
            assert line, seen.decode()
            seen += line
        run = await finish(proc)
        assert run.code == 130, seen.decode() + run.err
        assert "interrupted (SIGTERM)" in run.err
        assert received_n(server) == Counter(range(n))
    assert json.loads(checkpoint.read_text())["next_line"] == n + 1


async def test_sigint_stops_cleanly_and_a_rerun_resumes_without_duplicates(
    tmp_path: Path,
) -> None:
    n = 3000
    src = events_file(tmp_path / "events.ndjson", n)
    args = ("import", str(src), "--batch-size", "50", "--concurrency", "2")
    async with StandIn() as server:
        env = env_for(server)
        proc = await spawn(*args, env=env)
        await server.wait_for(lambda s: s.counts["batches"] >= 3, timeout=15)
        server.hold()  # nothing more completes until the command has seen the signal
        proc.send_signal(signal.SIGINT)
        assert proc.stderr is not None
        while b"SIGINT: stopping" not in await asyncio.wait_for(proc.stderr.readline(), 15):
            pass
        server.release()  # what is in flight completes within the drain deadline
        first = await finish(proc)
        assert first.code == 130, first.err
        assert "run the same command again to resume" in first.err
        checkpoint = json.loads((tmp_path / "events.ndjson.checkpoint.json").read_text())
        assert checkpoint["complete"] is False
        next_line = checkpoint["next_line"]
        assert 150 < next_line < n
        # The checkpoint is exact: every line before it arrived once, none after it.
        assert received_n(server) == Counter(range(next_line - 1))

        second = await cio(*args, env=env)
        assert second.code == 0, second.err
        assert f"resumed {src} at line {next_line:,}" in second.out
        assert received_n(server) == Counter(range(n))
        assert len({e.event_id for e in server.events()}) == n
        assert server.counts["duplicate_events_ignored"] == 0
    assert json.loads((tmp_path / "events.ndjson.checkpoint.json").read_text())["complete"]


async def test_lines_resent_after_a_crash_are_ignored_as_repeats(tmp_path: Path) -> None:
    n = 2000
    src = events_file(tmp_path / "events.ndjson", n)
    # No checkpoint is saved during the first run: after the crash, everything it
    # delivered is sent again, and only deterministic event ids keep it single.
    args = ("import", str(src), "--batch-size", "50", "--concurrency", "2")
    async with StandIn() as server:
        env = env_for(server)
        proc = await spawn(*args, "--checkpoint-interval", "3600", env=env)
        await server.wait_for(lambda s: s.counts["batches"] >= 3, timeout=15)
        server.hold()
        proc.kill()
        crashed = await finish(proc)
        assert crashed.code == -signal.SIGKILL
        server.release()
        await server.wait_for(lambda s: s.held == 0 and s.concurrent == 0, timeout=10)
        delivered_before_crash = len(server.events())
        assert delivered_before_crash >= 150
        assert not (tmp_path / "events.ndjson.checkpoint.json").exists()

        second = await cio(*args, env=env)
        assert second.code == 0, second.err
        assert received_n(server) == Counter(range(n))
        assert server.counts["duplicate_events_ignored"] == delivered_before_crash


async def test_dry_run_sends_nothing_and_reports_every_bad_line(tmp_path: Path) -> None:
    src = write_ndjson(
        tmp_path / "people.jsonl",
        [
            {"type": "identify", "id": "1"},
            {"type": "identify", "email": "not-an-email"},
            {"type": "identify", "id": "3", "attributes": {"x": {"nested": "y" * 2000}}},
            {"type": "fly", "id": "4"},
            {"id": "5", "timestamp": 1700000000000},
        ],
    )
    async with StandIn() as server:
        run = await cio("import", str(src), "--dry-run", env=env_for(server))
        assert server.counts["requests"] == 0
    assert run.code == 1, run.err
    bad = [line for line in run.out.splitlines() if line.startswith("line ")]
    assert bad == [
        "line 2: email: 'not-an-email' is not an email address",
        "line 3: attributes.x: value is 2013 bytes encoded; the limit is 1000",
        "line 4: type: must be one of identify, track, page, screen, delete, got 'fly'",
        "line 5: type: is required: one of identify, track, page, screen, delete "
        "(or pass --kind for every line)",
    ]
    assert "1 valid (1 identify), 4 invalid. Nothing was sent." in run.out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["people.jsonl"]  # no state files

    with_kind = await cio("import", str(src), "--dry-run", "--kind", "identify", "--sandbox")
    assert "line 5: timestamp: 1700000000000 looks like milliseconds" in with_kind.out
    assert "sandbox:" not in with_kind.out  # a dry run starts no stand-in either


async def test_sandbox_needs_no_credentials_and_leaves_no_checkpoint(tmp_path: Path) -> None:
    src = events_file(tmp_path / "events.ndjson", 10)
    run = await cio("import", str(src), "--sandbox")
    assert run.code == 0, run.err
    assert "sandbox: the embedded stand-in received" in run.out
    assert "person.event 10" in run.out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.ndjson"]


# -- exit codes and errors a person can act on -----------------------------------------


async def test_missing_credentials_name_the_variables(tmp_path: Path) -> None:
    src = events_file(tmp_path / "events.ndjson", 1)
    run = await cio("import", str(src))
    assert run.code == 2
    assert "CUSTOMERIO_SITE_ID and CUSTOMERIO_TRACK_API_KEY" in run.err
    half = await cio("import", str(src), env={**base_env(), "CUSTOMERIO_SITE_ID": "x"})
    assert half.code == 2
    assert "set CUSTOMERIO_TRACK_API_KEY (" in half.err


async def test_usage_errors_exit_2_with_a_reason(tmp_path: Path) -> None:
    env = {**base_env(), "CUSTOMERIO_SITE_ID": "s", "CUSTOMERIO_TRACK_API_KEY": "k"}
    missing = await cio("import", str(tmp_path / "nope.ndjson"), env=env)
    assert missing.code == 2
    assert "cannot read" in missing.err and "No such file or directory" in missing.err

    (tmp_path / "data.txt").write_text("{}\n")
    unknown = await cio("import", str(tmp_path / "data.txt"), env=env)
    assert unknown.code == 2
    assert "--format ndjson or csv or tsv" in unknown.err

    (tmp_path / "no_id.csv").write_text("name,plan\nAda,pro\n")
    header = await cio("import", str(tmp_path / "no_id.csv"), "--dry-run")
    assert header.code == 2
    assert "no identifier column" in header.err

    bad_region = await cio(
        "import", str(tmp_path / "no_id.csv"), env={**env, "CUSTOMERIO_REGION": "mars"}
    )
    assert bad_region.code == 2
    assert "CUSTOMERIO_REGION" in bad_region.err


async def test_refused_credentials_exit_2(tmp_path: Path) -> None:
    src = events_file(tmp_path / "events.ndjson", 5)
    async with StandIn() as server:
        run = await cio("import", str(src), env=env_for(server, CUSTOMERIO_TRACK_API_KEY="bad"))
    assert run.code == 2
    assert "Customer.io refused the credentials" in run.err
    checkpoint = json.loads((tmp_path / "events.ndjson.checkpoint.json").read_text())
    assert checkpoint["next_line"] == 1  # nothing counted as delivered


async def test_unreachable_customerio_exits_3_and_resumes_later(tmp_path: Path) -> None:
    src = events_file(tmp_path / "events.ndjson", 5)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]  # nothing listens here once the socket closes
    env = {
        **base_env(),
        "CUSTOMERIO_SITE_ID": "stand-in-site",
        "CUSTOMERIO_TRACK_API_KEY": "stand-in-track-key",
        "CUSTOMERIO_TRACK_URL": f"http://127.0.0.1:{closed_port}",
    }
    run = await cio("import", str(src), "--retry-timeout", "0", env=env)
    assert run.code == 3, run.err
    assert "delivery failed, stopped before line 1" in run.err

    async with StandIn() as server:
        retry = await cio("import", str(src), "--retry-timeout", "0", env=env_for(server))
        assert retry.code == 0, retry.err
        assert received_n(server) == Counter(range(5))


async def test_a_changed_input_is_not_resumed(tmp_path: Path) -> None:
    src = events_file(tmp_path / "events.ndjson", 20)
    async with StandIn() as server:
        env = env_for(server)
        assert (await cio("import", str(src), env=env)).code == 0
        # Grown at the end: the earlier lines are unchanged, so only the new one is sent.
        with src.open("a") as f:
            f.write(json.dumps({"type": "track", "id": "u", "name": "e", "data": {"n": 20}}) + "\n")
        grown = await cio("import", str(src), env=env)
        assert grown.code == 0, grown.err
        assert received_n(server) == Counter(range(21))
        # Changed before the checkpoint: refused, nothing sent.
        src.write_text(src.read_text().replace('"n": 3}', '"n": 333}'))
        changed = await cio("import", str(src), env=env)
        assert changed.code == 2
        assert "--restart" in changed.err
        assert received_n(server) == Counter(range(21))
        restarted = await cio("import", str(src), "--restart", env=env)
        assert restarted.code == 0, restarted.err
        assert received_n(server)[333] == 1
        assert "checkpoint: next line 22 (complete)" in restarted.out
