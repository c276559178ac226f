"""The layers of docs/DESIGN.md ("Layers"), checked on the source: no import climbs a layer.

Each module's imports are read with :mod:`ast` (top-level ones and those inside functions alike)
and followed through the project's own modules, so a forbidden package reached through another module
counts as well. The check is on the files, not on a running interpreter, so it cannot be fooled
by what another test happened to import first.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE_ROOTS = (ROOT, ROOT / "clients" / "python")
FIRST_PARTY = ("exchange", "exchange_client")

STORAGE_AND_TRANSPORT = ("sqlalchemy", "alembic", "psycopg", "grpc", "grpc_status", "grpc_health")
SERVER_SIDE = ("exchange.store", "exchange.hub")


@dataclass(frozen=True)
class Layer:
    name: str
    packages: tuple[str, ...]
    forbidden: tuple[str, ...]


LAYERS = (
    Layer(
        "core",
        (
            "exchange.crypto",
            "exchange.statements",
            "exchange.alerts",
            "exchange.audit",
            "exchange.match",
        ),
        STORAGE_AND_TRANSPORT + SERVER_SIDE + ("exchange.config", "exchange_client"),
    ),
    Layer(
        "client",
        ("exchange_client",),
        ("sqlalchemy", "alembic", "psycopg") + SERVER_SIDE,
    ),
)


def module_file(name: str) -> Path | None:
    """The source file of first-party module ``name``, or ``None`` if it is not one."""
    parts = name.split(".")
    for root in SOURCE_ROOTS:
        base = root.joinpath(*parts)
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def module_name(path: Path) -> str:
    for root in SOURCE_ROOTS:
        if root in path.parents and path.relative_to(root).parts[0] in FIRST_PARTY:
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            return ".".join(parts)
    raise ValueError(f"{path} is not a first-party module")


@functools.cache
def imports_in_file(path: Path) -> tuple[str, ...]:
    return tuple(imported_names(module_name(path), path.read_text(encoding="utf-8"), path))


def imported_names(this: str, text: str, path: Path | None = None) -> Iterator[str]:
    """Every module the source ``text`` of module ``this`` imports, as absolute dotted names
    (parent packages included)."""
    is_package = path is not None and path.name == "__init__.py"
    package = this if is_package else this.rpartition(".")[0]
    for node in ast.walk(ast.parse(text, filename=str(path or this))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            yield from (".".join(parts[:i]) for i in range(1, len(parts) + 1))


def reached(start: str, extra: Mapping[str, str]) -> dict[str, list[str]]:
    """Every module reachable by imports from first-party module ``start``, with one path to it.

    ``extra`` adds modules (name to source text) that are not on disk, for the tests of the
    check itself.
    """
    paths: dict[str, list[str]] = {start: [start]}
    queue = [start]
    while queue:
        current = queue.pop()
        source = module_file(current)
        if current in extra:
            names: Iterable[str] = imported_names(current, extra[current])
        elif source is not None:
            names = imports_in_file(source)
        else:
            continue
        for name in names:
            if name in paths:
                continue
            paths[name] = [*paths[current], name]
            if name in extra or (name.split(".")[0] in FIRST_PARTY and module_file(name)):
                queue.append(name)
    return paths


def modules_of(package: str) -> list[str]:
    source = module_file(package)
    assert source is not None, f"no package {package}"
    directory = source.parent
    return sorted(
        module_name(path) for path in directory.rglob("*.py") if "__pycache__" not in path.parts
    )


def violations(layer: Layer, extra: Mapping[str, str] | None = None) -> list[str]:
    """Each import chain from a module of ``layer`` to a package it may not use."""
    extra = extra or {}
    found = []
    for package in layer.packages:
        modules = modules_of(package) + [m for m in extra if m.startswith(package + ".")]
        for module in modules:
            for name, chain in reached(module, extra).items():
                if any(name == f or name.startswith(f + ".") for f in layer.forbidden):
                    found.append(" -> ".join(chain))
    return sorted(set(found))


@pytest.mark.parametrize("layer", LAYERS, ids=lambda layer: layer.name)
def test_no_module_imports_above_its_layer(layer: Layer) -> None:
    assert violations(layer) == []


def test_the_check_sees_an_import_added_to_a_core_module() -> None:
    """A forbidden import, direct or inside a function, in a core module is found."""
    probe = {
        "exchange.audit.probe": (
            "from exchange.audit import merkle\n\n\ndef load():\n    import sqlalchemy\n"
        )
    }
    assert "exchange.audit.probe -> sqlalchemy" in violations(LAYERS[0], probe)


def test_the_check_follows_imports_through_other_modules() -> None:
    """A core module reaching the hub through another first-party module is found, and so is
    what the hub module itself imports."""
    found = violations(LAYERS[0], {"exchange.crypto.probe": "from exchange.hub import status\n"})
    assert "exchange.crypto.probe -> exchange.hub" in found
    assert "exchange.crypto.probe -> exchange.hub.status -> grpc" in found
    chain = {
        "exchange.alerts.probe": "from exchange.alerts.probe_middle import x\n",
        "exchange.alerts.probe_middle": "import exchange.crypto\nfrom sqlalchemy import select\n",
    }
    assert "exchange.alerts.probe -> exchange.alerts.probe_middle -> sqlalchemy" in violations(
        LAYERS[0], chain
    )


def test_the_check_resolves_relative_imports() -> None:
    found = violations(LAYERS[1], {"exchange_client._internal.probe": "from ...store import db\n"})
    assert found == []  # ``exchange_client.store`` is no server package: a relative import
    found = violations(LAYERS[1], {"exchange_client.probe": "from exchange.store import db\n"})
    assert "exchange_client.probe -> exchange.store" in found


def test_the_real_tree_is_checked() -> None:
    """The layers list real modules and the walk reaches the third-party packages they use."""
    assert "exchange.audit.merkle" in modules_of("exchange.audit")
    assert "grpc" in reached("exchange_client._internal.status", {})


def cycles(packages: tuple[str, ...]) -> list[list[str]]:
    """Import cycles among the modules of ``packages``, packages' ``__init__`` aside
    (typing-only imports count: a cycle only type checking sees still ties two modules)."""
    modules = {
        m
        for package in packages
        for m in modules_of(package)
        if module_file(m).name != "__init__.py"  # type: ignore[union-attr]
    }  # a package's ``__init__`` re-exports its modules: importing one imports the package
    edges = {
        m: {n for n in imports_in_file(module_file(m)) if n in modules and n != m}  # type: ignore[arg-type]
        for m in modules
    }
    found = []
    for start in sorted(modules):
        stack = [(start, [start])]
        while stack:
            current, path = stack.pop()
            for nxt in sorted(edges[current]):
                if nxt == start:
                    found.append(path)
                elif nxt not in path and nxt > start:
                    stack.append((nxt, [*path, nxt]))
    return found


def test_no_import_cycle_in_the_core() -> None:
    """Each core module can be read, and replaced, on its own: none imports one that imports
    it back (``alerts.draft`` and ``alerts.validate`` once did)."""
    assert cycles(LAYERS[0].packages) == []
