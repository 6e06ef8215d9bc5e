"""Each package's ``__init__`` is its public face: every name it lists resolves, in order."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = [
    "gateway.cli",
    "gateway.governor",
    "gateway.monitoring",
    "gateway.predictionlog",
    "gateway.serving",
    "gateway.tools",
    "gateway.transport",
    "registry",
]


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
    package = importlib.import_module("gateway.monitoring")
    with pytest.raises(AttributeError):
        _ = package.no_such_name
    # A submodule not in __all__ still imports the ordinary way.
    from gateway.monitoring import windows

    assert windows.__name__ == "gateway.monitoring.windows"


def test_registry_face_contract_lists_every_module_behind_the_face() -> None:
    """The ``registry-face`` import contract forbids the gateway every registry module but
    the face's pure ones; a module added to the registry must join that list."""
    import pkgutil
    import tomllib
    from pathlib import Path

    import registry

    pyproject = Path(__file__).parents[2] / "pyproject.toml"
    contracts = tomllib.loads(pyproject.read_text())["tool"]["importlinter"]["contracts"]
    face = next(c for c in contracts if c["id"] == "registry-face")
    modules = {f"registry.{m.name}" for m in pkgutil.iter_modules(registry.__path__)}
    pure = {"registry.datatypes", "registry.deployment", "registry.errors", "registry.signature"}
    assert set(face["forbidden_modules"]) == modules - pure
