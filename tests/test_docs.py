"""The API reference covers every public name (the strict site build runs in
scripts/test)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import cio_async
import cio_async.redis
import cio_async.testing

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _documented() -> set[str]:
    names: set[str] = set()
    for page in (DOCS / "reference").glob("*.md"):
        names.update(re.findall(r"^::: ([\w.]+)$", page.read_text(), flags=re.M))
    return names


def test_every_public_name_has_a_reference_entry() -> None:
    documented = _documented()
    public = {f"cio_async.{n}" for n in cio_async.__all__ if n != "__version__"}
    public |= {f"cio_async.testing.{n}" for n in cio_async.testing.__all__}
    public |= {f"cio_async.redis.{n}" for n in cio_async.redis.__all__}
    assert sorted(public - documented) == []
    assert sorted(documented - public - {"cio_async.testing.pytest_plugin"}) == []


@pytest.mark.parametrize("name", sorted(n for n in cio_async.__all__ if n != "__version__"))
def test_every_public_name_has_a_docstring(name: str) -> None:
    obj = getattr(cio_async, name)
    if isinstance(obj, (str, int)) or not callable(obj):
        pytest.skip("a constant: documented in the reference page's prose")
    assert (obj.__doc__ or "").strip(), name
