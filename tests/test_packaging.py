"""What a user of the installed package meets: lazy imports, the pytest plugin found
through its entry point, and stand-in helpers that do not wait for production limits."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cio_async import AsyncCustomerIO
from cio_async.testing import StandIn


def test_import_does_not_load_optional_machinery() -> None:
    code = (
        "import sys, cio_async; "
        "print(sorted(m for m in ('aiohttp.web', 'anyio', 'cio_async._sync', "
        "'cio_async._integrations', 'cio_async.app._webhooks') if m in sys.modules)); "
        "cio_async.CustomerIO; cio_async.asgi_lifespan; "
        "print('aiohttp.web' in sys.modules, cio_async.CustomerIO.__module__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[0] == "[]"
    assert out[1] == "True cio_async"


def test_unknown_attribute_is_an_attribute_error() -> None:
    import cio_async

    with pytest.raises(AttributeError, match="NoSuchThing"):
        cio_async.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018


async def test_stand_in_client_kwargs_relax_app_rate_limits(server: StandIn) -> None:
    # Production allows one broadcast trigger per 10 s: three would wait 20 s.
    async with AsyncCustomerIO(**server.client_kwargs()) as cio:
        for _ in range(3):
            await asyncio.wait_for(cio.app.trigger_broadcast(12), timeout=5)
    assert len(server.triggers) == 3
    kept = AsyncCustomerIO(**server.client_kwargs(production_limits=True))
    assert kept.config.app.broadcast_rate_limit is not None


async def test_stand_in_environ_points_from_env_at_it(server: StandIn) -> None:
    env = server.environ()
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        async with AsyncCustomerIO.from_env() as cio:
            await cio.track("42", "purchase", wait=True)
            await cio.app.trigger_broadcast(1)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert [e.name for e in server.events()] == ["purchase"]
    assert len(server.triggers) == 1


def test_pytest_plugin_loads_by_entry_point(tmp_path: Path) -> None:
    # A user's project with no conftest.py: the fixtures come from the installed plugin.
    (tmp_path / "test_user.py").write_text(
        textwrap.dedent(
            """
            async def test_it(cio_client, cio_stand_in):
                await cio_client.track("42", "purchase", wait=True)
                assert [e.name for e in cio_stand_in.events()] == ["purchase"]
            """
        )
    )
    (tmp_path / "pytest.ini").write_text("[pytest]\nasyncio_mode = auto\n")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout
