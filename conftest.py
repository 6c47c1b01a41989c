"""Runs every Python (and NDJSON) code block in README.md and docs/ as a test.

Each document gets its own Customer.io stand-in on a loop thread, with the
``CUSTOMERIO_*`` variables pointing at it (credentials, both URLs, region), so the
blocks read as real code (``AsyncCustomerIO.from_env()``) and run as pasted: every
block is a complete program. Blocks run in a fresh temporary directory, in document
order, sharing one namespace (``__name__ == "__main__"``). A ``text`` block right after
a Python block is checked against what that block printed; a block headed
``# tests/test_x.py`` is written there and run with pytest. Shell blocks run their
``cio-async`` commands; lines that set a machine up (``pip install``, ``./scripts/``,
``export``) are shown, not run.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, redirect_stdout
from pathlib import Path
from typing import Any

import anyio.from_thread
from sybil import Example, Sybil
from sybil.parsers.markdown import CodeBlockParser, SkipParser

from cio_async import CustomerIO
from cio_async.testing import StandIn


@contextmanager
def _stand_in_env() -> Iterator[StandIn]:
    with anyio.from_thread.start_blocking_portal("asyncio") as portal:
        server = StandIn()
        portal.call(server.start)
        saved = dict(os.environ)
        os.environ.update(server.environ())
        try:
            yield server
        finally:
            os.environ.clear()
            os.environ.update(saved)
            portal.call(server.close)


@contextmanager
def _redis_env() -> Iterator[None]:
    """A real redis-server for the blocks that use one, at ``REDIS_URL``."""
    from tests.redis_support import RedisServer

    server = RedisServer().start()
    saved = os.environ.get("REDIS_URL")
    os.environ["REDIS_URL"] = server.url
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("REDIS_URL", None)
        else:
            os.environ["REDIS_URL"] = saved
        server.stop()


def _setup(namespace: dict[str, Any]) -> None:
    stack = ExitStack()
    namespace["_stack"] = stack
    namespace["__name__"] = "__main__"
    namespace["_stand_in"] = stack.enter_context(_stand_in_env())
    # The fleet blocks talk to a real Redis (scripts/test installs redis-server).
    stack.enter_context(_redis_env())
    tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="cio-docs-"))
    cwd = os.getcwd()
    os.chdir(tmp)
    stack.callback(os.chdir, cwd)


def _teardown(namespace: dict[str, Any]) -> None:
    for client in namespace.get("_sync_clients", []):
        client.close()
    logging.getLogger("cio_async").setLevel(logging.NOTSET)  # the logging guide sets it
    namespace["_stack"].close()


def _run_pytest_file(example: Example) -> None:
    """A block headed ``# tests/test_x.py`` is a user's test module: run it with pytest
    (the fixtures come from the installed plugin, nothing else is configured)."""
    path = Path(example.parsed.split("\n", 1)[0].split()[1])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(example.parsed)
    args = ["-q", "-p", "no:cacheprovider", "-o", "asyncio_mode=auto", "--rootdir", "."]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *args, str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _run_python(example: Example) -> None:
    """Run a block as a program; keep what it printed for a ``text`` block after it."""
    if re.match(r"# (tests/)?test_\w+\.py", example.parsed):
        return _run_pytest_file(example)
    out = io.StringIO()
    code = compile(example.parsed, f"{example.path}:{example.line}", "exec")
    with redirect_stdout(out):
        exec(code, example.namespace)
    example.namespace["_printed"] = out.getvalue()
    # Module-level blocking clients (a Django or Flask module) stay open as they would
    # in a process; close them at the end of the document, as atexit would.
    opened = example.namespace.setdefault("_sync_clients", [])
    opened.extend(
        v for v in list(example.namespace.values()) if isinstance(v, CustomerIO) and v not in opened
    )


def _check_output(example: Example) -> None:
    """A ``text`` block right after a Python block is what that block printed."""
    printed = example.namespace.pop("_printed", None)
    assert printed is not None, "a text block must follow the Python block it shows"
    assert printed.strip() == example.parsed.strip()


def _check_ndjson(example: Example) -> None:
    """An NDJSON sample must pass ``cio-async import --dry-run`` line by line."""
    path = Path("sample.ndjson")
    path.write_text(example.parsed)
    proc = subprocess.run(
        [sys.executable, "-m", "cio_async", "import", str(path), "--dry-run", "--quiet"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


#: Shell lines that set a machine up rather than show the command line: not run here
#: (the suite itself is what ./scripts/test runs; the package is installed).
_SETUP_LINES = ("export ", "pip install", "./scripts/")


def _input_files() -> None:
    """The files the command-line examples read, as a user would have them."""
    people = [
        {"type": "identify", "id": "42", "attributes": {"plan": "pro"}},
        {"type": "track", "email": "ada@example.com", "name": "purchase", "data": {"amount": 30}},
    ]
    Path("people.ndjson").write_text("".join(json.dumps(p) + "\n" for p in people))
    Path("signups.csv").write_text("id,email,plan\n42,ada@example.com,pro\n43,bob@example.com,\n")
    events = [{"type": "track", "id": "42", "name": "viewed", "data": {"n": i}} for i in range(3)]
    Path("events.ndjson.gz").write_bytes(
        gzip.compress("".join(json.dumps(e) + "\n" for e in events).encode())
    )


def _run_shell(example: Example) -> None:
    """Run each ``cio-async`` command of a shell block (in the document's directory,
    with ``CUSTOMERIO_*`` pointing at its stand-in); each must exit 0."""
    if not Path("people.ndjson").exists():
        _input_files()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    for raw in example.parsed.splitlines():
        line = raw.split("  #")[0].strip()
        if not line or line.startswith("#") or line.startswith(_SETUP_LINES):
            continue
        assert "cio-async" in line, f"a shell line the docs tests cannot run: {line}"
        server: StandIn = example.namespace["_stand_in"]
        before = len(server.operations)
        relay = line.startswith("cio-async relay")
        if relay:
            # A relay runs until stopped: give it six seconds, then SIGTERM (its
            # graceful stop exits 0), and it must have delivered the stream's events.
            # --foreground: the signal goes to the relay alone, once (not also to
            # its process group, which can land after its handlers are gone).
            line = f"timeout --foreground --preserve-status -s TERM 6 {line}"
        proc = subprocess.run(
            ["bash", "-o", "pipefail", "-c", line], capture_output=True, text=True, env=env
        )
        assert proc.returncode == 0, f"{line}\n{proc.stdout}{proc.stderr}"
        if relay or (
            " import " in f" {line} " and "--dry-run" not in line and "--sandbox" not in line
        ):
            assert len(server.operations) > before, f"{line}: nothing reached the stand-in"


pytest_collect_file = Sybil(
    parsers=[
        CodeBlockParser("python", _run_python),
        CodeBlockParser("text", _check_output),
        CodeBlockParser("json", _check_ndjson),
        CodeBlockParser("sh", _run_shell),
        SkipParser(),
    ],
    patterns=["README.md", "docs/*.md", "docs/**/*.md"],
    setup=_setup,
    teardown=_teardown,
).pytest()
