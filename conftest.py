"""Runs every Python (and NDJSON) code block in README.md and docs/ as a test.

Each document gets its own Customer.io stand-in on a loop thread, with the
``CUSTOMERIO_*`` variables pointing at it (credentials, both URLs, region), so the
blocks read as real code (``AsyncCustomerIO.from_env()``) and run as pasted: every
block is a complete program. Blocks run in a fresh temporary directory, in document
order, sharing one namespace (``__name__ == "__main__"``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import anyio.from_thread
from sybil import Example, Sybil
from sybil.parsers.markdown import CodeBlockParser, PythonCodeBlockParser, SkipParser

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


def _setup(namespace: dict[str, Any]) -> None:
    stack = ExitStack()
    namespace["_stack"] = stack
    namespace["__name__"] = "__main__"
    namespace["_stand_in"] = stack.enter_context(_stand_in_env())
    tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="cio-docs-"))
    cwd = os.getcwd()
    os.chdir(tmp)
    stack.callback(os.chdir, cwd)


def _teardown(namespace: dict[str, Any]) -> None:
    namespace["_stack"].close()


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


pytest_collect_file = Sybil(
    parsers=[
        PythonCodeBlockParser(),
        CodeBlockParser("json", _check_ndjson),
        SkipParser(),
    ],
    patterns=["README.md", "docs/*.md", "docs/**/*.md"],
    setup=_setup,
    teardown=_teardown,
).pytest()
