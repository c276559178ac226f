"""Reading the project's TOML configuration files (``profile.toml``, ``hub.toml``) with errors
that name the file, the table and the key, and say what to do."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from exchange import pki
from exchange.errors import ConfigurationError, ExchangeError

__all__ = ["TomlTable", "read_toml"]


def read_toml(file: Path, *, missing: str, fix: str) -> dict[str, Any]:
    """The document in ``file``; ``missing`` says how to make one that is not there, ``fix``
    what to do with one that is not valid TOML."""
    try:
        text = file.read_bytes().decode("utf-8")
    except FileNotFoundError as e:
        raise ConfigurationError(f"{file}: {missing}") from e
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigurationError(f"{file}: cannot read the file: {e}") from e
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigurationError(f"{file}: not valid TOML ({e}); {fix}") from e


class TomlTable:
    """One TOML table, with the file and table name every error message needs."""

    def __init__(self, values: Mapping[str, Any], file: Path, name: str) -> None:
        self._values = values
        self._file = file
        self._name = name

    def _where(self, key: str) -> str:
        return f"{self._file}: {f'[{self._name}] ' if self._name else ''}{key}"

    @property
    def file(self) -> Path:
        """The file the table was read from."""
        return self._file

    def names(self) -> list[str]:
        """The keys of the table."""
        return list(self._values)

    def table(self, key: str, *, required: bool = False) -> TomlTable:
        """The table ``[key]`` (empty when absent, unless ``required``)."""
        value = self._values.get(key)
        if value is None and not required:
            return TomlTable({}, self._file, key)
        if not isinstance(value, dict):
            raise ConfigurationError(f"{self._where(key)}: expected a [{key}] table")
        return TomlTable(value, self._file, key)

    def string(self, key: str, default: str | None = None) -> str:
        """A non-empty string; without a ``default`` the key is required."""
        value = self._values.get(key, default)
        if value is None:
            raise ConfigurationError(f"{self._where(key)} is missing; add it")
        if not isinstance(value, str) or not value:
            raise ConfigurationError(f"{self._where(key)} must be a non-empty string")
        return value

    def optional_string(self, key: str) -> str | None:
        """A non-empty string, or ``None`` when the key is absent."""
        if key not in self._values:
            return None
        return self.string(key)

    def path(self, key: str, *, default: Path | None = None) -> Path:
        """A path, as written (relative paths are the caller's to resolve)."""
        if key not in self._values and default is not None:
            return default
        return Path(self.string(key))

    def boolean(self, key: str) -> bool:
        """``true`` or ``false`` (false when absent)."""
        value = self._values.get(key, False)
        if not isinstance(value, bool):
            raise ConfigurationError(f"{self._where(key)} must be true or false")
        return value

    def positive_number(self, key: str, default: float) -> float:
        """A number above 0."""
        value = self._values.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ConfigurationError(f"{self._where(key)} must be a positive number, got {value!r}")
        return float(value)

    def positive_integer(self, key: str, default: int) -> int:
        """A whole number above 0."""
        value = self._values.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigurationError(
                f"{self._where(key)} must be a positive integer (a whole number above 0), "
                f"got {value!r}"
            )
        return value

    def agency_ids(self, key: str) -> tuple[str, ...]:
        """A list of agency ids (empty when absent)."""
        value = self._values.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigurationError(f"{self._where(key)} must be a list of agency ids")
        for agency_id in value:
            try:
                pki.check_agency_id(agency_id)
            except ExchangeError as e:
                raise ConfigurationError(f"{self._where(key)}: {e.message}") from e
        return tuple(value)

    def refuse_unknown(self, known: set[str]) -> None:
        """Raise naming any key outside ``known``."""
        unknown = sorted(set(self._values) - known)
        if unknown:
            raise ConfigurationError(
                f"{self._where(', '.join(unknown))}: unknown setting; expected "
                f"{', '.join(sorted(known))}"
            )
