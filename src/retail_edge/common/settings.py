"""Typed service settings from a YAML file and environment variables.

A service describes its settings as a frozen dataclass. Values come from, in rising precedence: the field
defaults, a YAML file (a mapping of field names), and environment variables named ``<PREFIX><FIELD>`` in upper
case (``RETAIL_EDGE_INVENTORY_HQ_URL`` for ``hq_url``). The YAML path itself comes from ``<PREFIX>CONFIG`` or
from the caller, so a deployment role templates one file and an operator can still override a single value.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class SettingsError(ValueError):
    """Invalid settings; the message names the setting, the source and the value."""


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in _TRUE | _FALSE:
        raise ValueError("expected true or false")
    return text in _TRUE


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected an integer")
    return int(value)


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a number")
    return float(value)


def _to_str(value: Any) -> str:
    if not isinstance(value, str | int | float):
        raise ValueError("expected a string")
    return str(value)


_CONVERTERS: dict[Any, Any] = {bool: _to_bool, int: _to_int, float: _to_float, str: _to_str, Path: Path}


def _coerce(name: str, source: str, hint: Any, value: Any) -> Any:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "null", "none")):
            return None
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    converter = _CONVERTERS.get(hint)
    if converter is None:
        raise SettingsError(f"setting {name!r} has a type the loader does not support: {hint!r}")
    try:
        return converter(value)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"setting {name!r} from {source} is invalid: {value!r} ({exc})") from exc


def load_settings(
    cls: type[T],
    prefix: str,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> T:
    """Build ``cls`` from its defaults, the YAML file and ``<PREFIX>*`` environment variables."""
    environ = os.environ if environ is None else environ
    hints = typing.get_type_hints(cls)
    fields = {field.name: field for field in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}

    path = config_file or (Path(environ[f"{prefix}CONFIG"]) if environ.get(f"{prefix}CONFIG") else None)
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise SettingsError(f"cannot read settings file {path}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise SettingsError(f"settings file {path} must contain a mapping of setting names to values")
        unknown = sorted(set(loaded) - set(fields))
        if unknown:
            raise SettingsError(f"settings file {path} has unknown settings {unknown}; known: {sorted(fields)}")
        for name, value in loaded.items():
            values[name] = _coerce(name, str(path), hints[name], value)

    for name in fields:
        env_name = f"{prefix}{name.upper()}"
        if env_name in environ:
            values[name] = _coerce(name, f"${env_name}", hints[name], environ[env_name])

    missing = [name for name, field in fields.items() if name not in values and _has_no_default(field)]
    if missing:
        names = ", ".join(f"{name} (${prefix}{name.upper()})" for name in missing)
        raise SettingsError(f"required settings are missing: {names}")
    settings = cls(**values)
    validate = getattr(settings, "validate", None)
    if callable(validate):
        validate()
    return settings


def _has_no_default(field: dataclasses.Field[Any]) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
