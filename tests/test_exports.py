"""The public surface: ``__all__`` is sorted and complete, every name in it exists, and
every public class and function says what it is."""

from __future__ import annotations

import ast
import dataclasses
import inspect
from pathlib import Path
from types import ModuleType

import pytest

import cio_async
import cio_async.testing

PACKAGES = [cio_async, cio_async.testing]


def bound_names(package: ModuleType) -> set[str]:
    """Names the package's ``__init__.py`` binds at top level (imports, assignments,
    definitions), read from its source: what a reader of the file sees exported."""
    assert package.__file__ is not None
    tree = ast.parse(Path(package.__file__).read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            names.update(alias.asname or alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def is_public(name: str) -> bool:
    return not name.startswith("_") and name != "annotations"


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_all_is_sorted_and_every_name_exists(package: ModuleType) -> None:
    names = package.__all__
    assert names == sorted(names)
    assert len(set(names)) == len(names)
    missing = [name for name in names if not hasattr(package, name)]
    assert not missing, f"in __all__ but not defined: {missing}"


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_all_is_complete(package: ModuleType) -> None:
    # Every public name the __init__ binds is exported...
    public = {n for n in bound_names(package) if is_public(n)}
    unexported = sorted(public - set(package.__all__))
    assert not unexported, f"bound in {package.__name__}/__init__.py, not in __all__: {unexported}"
    # ... and so is every public class or function found on the package at run time
    # that comes from the package (however it got there).
    stray = sorted(
        name
        for name, obj in vars(package).items()
        if is_public(name)
        and (inspect.isclass(obj) or inspect.isfunction(obj))
        and obj.__module__.startswith("cio_async")
        and name not in package.__all__
    )
    assert not stray, f"public on {package.__name__} but not in __all__: {stray}"


def test_public_classes_print_as_cio_async() -> None:
    for name in cio_async.__all__:
        obj = getattr(cio_async, name)
        if isinstance(obj, type):
            assert obj.__module__ == "cio_async", name


def own_docstring(obj: object) -> str | None:
    """The object's own docstring (a dataclass's generated signature does not count)."""
    doc = vars(obj).get("__doc__") if isinstance(obj, type) else getattr(obj, "__doc__", None)
    if not doc or not doc.strip():
        return None
    if (
        isinstance(obj, type)
        and dataclasses.is_dataclass(obj)
        and doc.startswith(f"{obj.__name__}(")
    ):
        return None
    return str(doc)


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_every_public_class_and_function_has_a_docstring(package: ModuleType) -> None:
    undocumented = [
        name
        for name in package.__all__
        if (inspect.isclass(obj := getattr(package, name)) or inspect.isfunction(obj))
        and own_docstring(obj) is None
    ]
    assert not undocumented, f"no docstring: {undocumented}"


def test_the_checks_catch_what_they_look_for() -> None:
    # The helpers the tests above rely on see a missing docstring and a stray name.
    @dataclasses.dataclass
    class Bare:
        x: int

    @dataclasses.dataclass
    class Documented:
        """It says what it is."""

    assert own_docstring(Bare) is None
    assert own_docstring(Documented) == "It says what it is."
    assert {"AsyncCustomerIO", "__version__", "CLIENT_KEY"} <= bound_names(cio_async)
