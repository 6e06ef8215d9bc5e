"""A package's ``__init__`` is either its public face (every name it lists resolves, in
order) or only its docstring: a room nobody imports through has no face to keep up."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGES = [
    "gateway.cli",
    "gateway.fleet",
    "gateway.operations",
    "gateway.predictionlog",
    "gateway.tools",
    "registry",
]
FACELESS = ["gateway.governor", "gateway.monitoring", "gateway.serving", "gateway.transport"]


def _isort_key(name: str) -> tuple[int, str]:
    """CONSTANTS, then Classes, then functions — the order ruff's RUF022 keeps."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


@pytest.mark.parametrize("name", PACKAGES)
def test_face_has_docstring_and_sorted_unique_all(name: str) -> None:
    package = importlib.import_module(name)
    assert (package.__doc__ or "").strip(), f"{name} has no docstring"
    names = list(package.__all__)
    assert names, f"{name}.__all__ is empty"
    assert len(set(names)) == len(names), f"{name}.__all__ repeats a name"
    assert names == sorted(names, key=_isort_key), f"{name}.__all__ is not sorted"


@pytest.mark.parametrize("name", PACKAGES)
def test_every_exported_name_resolves(name: str) -> None:
    package = importlib.import_module(name)
    for attr in package.__all__:
        assert getattr(package, attr) is not None, f"{name}.{attr}"


def test_unknown_name_is_an_attribute_error() -> None:
    package = importlib.import_module("gateway.tools")
    with pytest.raises(AttributeError):
        _ = package.no_such_name
    # A submodule not in __all__ still imports the ordinary way.
    from gateway.tools import modelzoo

    assert modelzoo.__name__ == "gateway.tools.modelzoo"


@pytest.mark.parametrize("name", FACELESS)
def test_a_faceless_room_is_only_its_docstring(name: str) -> None:
    """No half-kept face: a name listed there would be one nobody imports through."""
    package = importlib.import_module(name)
    assert (package.__doc__ or "").strip(), f"{name} has no docstring"
    assert not hasattr(package, "__all__"), f"{name} lists names: keep them or drop the face"
    file = package.__file__
    assert file is not None
    tree = ast.parse(Path(file).read_text())
    assert len(tree.body) == 1, f"{name}/__init__.py holds more than its docstring"


def test_registry_face_contract_lists_every_module_behind_the_face() -> None:
    """The ``registry-face`` import contract forbids the gateway every registry module but
    the face's pure ones; a module added to the registry must join that list."""
    import pkgutil
    import tomllib

    import registry

    pyproject = Path(__file__).parents[2] / "pyproject.toml"
    contracts = tomllib.loads(pyproject.read_text())["tool"]["importlinter"]["contracts"]
    face = next(c for c in contracts if c["id"] == "registry-face")
    modules = {f"registry.{m.name}" for m in pkgutil.iter_modules(registry.__path__)}
    pure = {"registry.datatypes", "registry.deployment", "registry.errors", "registry.signature"}
    assert set(face["forbidden_modules"]) == modules - pure
