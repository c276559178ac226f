"""The public surface of exchange.alerts is what __all__ lists, and all of it exists."""

from __future__ import annotations

from exchange import alerts


def test_all_names_exist() -> None:
    for name in alerts.__all__:
        assert hasattr(alerts, name), name


def test_all_is_the_public_surface() -> None:
    public = {
        name
        for name, value in vars(alerts).items()
        if not name.startswith("_")
        and not isinstance(value, type(alerts))
        and name != "annotations"
    }
    assert public == set(alerts.__all__)
