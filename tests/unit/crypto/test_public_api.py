"""``exchange.crypto.__all__`` lists exactly the public classes and functions of its modules."""

from __future__ import annotations

import importlib
import inspect

import pytest

import exchange.crypto

MODULES = ["dsse", "encoding", "grants", "items", "keys"]


def test_every_name_in_all_is_importable() -> None:
    for name in exchange.crypto.__all__:
        assert getattr(exchange.crypto, name) is not None, name


@pytest.mark.parametrize("module_name", MODULES)
def test_every_public_class_and_function_is_exported(module_name: str) -> None:
    module = importlib.import_module(f"exchange.crypto.{module_name}")
    defined_here = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__ == module.__name__
    }
    assert defined_here, module_name
    assert defined_here <= set(exchange.crypto.__all__)
    for name in defined_here:
        assert getattr(exchange.crypto, name) is getattr(module, name)
