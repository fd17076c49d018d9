"""Parameter schemas and their validation, modelled on PVE::JSONSchema.

Every API method of the double declares its parameters as `Prop` objects. Validation converts the
form-encoded (or JSON) values to Python types and collects one message per invalid parameter, in the
wording Proxmox VE uses, so a client sees the same `errors` map as from a real cluster.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

# A named format either returns normally or raises FormatError with PVE's message.
FormatVerifier = Callable[[str], None]

MISSING = "property is missing and it is not optional"
UNDEFINED = "property is not defined in schema and the schema does not allow additional properties"

_INTEGER_RE = re.compile(r"[+-]?\d+")
_NUMBER_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_TRUE = {"1", "on", "yes", "true"}
_FALSE = {"0", "off", "no", "false"}


class FormatError(ValueError):
    """A value that breaks a named format or a property-string format."""


class ParamError(Exception):
    """Parameter verification failed: maps each parameter name to its message (HTTP 400 in PVE)."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__("Parameter verification failed.")
        self.errors = dict(errors)


@dataclass(frozen=True)
class Prop:
    """One parameter or one key of a property string, as PVE's JSON schema describes it."""

    type: str = "string"
    optional: bool = True
    enum: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    pattern: str | None = None
    format: str | PropertyFormat | None = None
    max_length: int | None = None
    min_length: int | None = None
    default: Any = None
    default_key: bool = False
    requires: str | None = None
    description: str = ""


@dataclass(frozen=True)
class PropertyFormat:
    """A comma-separated `key=value` string with typed keys (net[n], rootfs, features, ...)."""

    name: str
    keys: Mapping[str, Prop]

    @property
    def default_key(self) -> str | None:
        for key, prop in self.keys.items():
            if prop.default_key:
                return key
        return None


@dataclass(frozen=True)
class Indexed:
    """A family of numbered parameters such as net0..net31, written `net[n]` in PVE's schema."""

    prefix: str
    count: int
    prop: Prop


@dataclass
class ParamSchema:
    """The parameters one API method accepts: plain ones plus numbered families."""

    props: dict[str, Prop] = field(default_factory=dict)
    indexed: dict[str, Indexed] = field(default_factory=dict)

    def lookup(self, name: str) -> Prop | None:
        prop = self.props.get(name)
        if prop is not None:
            return prop
        match = re.fullmatch(r"([a-z]+)(\d+)", name)
        if match is None:
            return None
        family = self.indexed.get(match.group(1))
        if family is None or str(int(match.group(2))) != match.group(2) or int(match.group(2)) >= family.count:
            return None
        return family.prop

    def required(self) -> Iterator[str]:
        return (name for name, prop in self.props.items() if not prop.optional)

    def names(self) -> Iterable[str]:
        yield from self.props
        for family in self.indexed.values():
            yield f"{family.prefix}[n]"

    def extend(self, other: ParamSchema) -> ParamSchema:
        return ParamSchema({**self.props, **other.props}, {**self.indexed, **other.indexed})


def schema(props: Mapping[str, Prop] | None = None, *families: Indexed) -> ParamSchema:
    return ParamSchema(dict(props or {}), {family.prefix: family for family in families})


class FormatRegistry:
    """Named formats (`dns-name`, `pve-volume-id`, ...) and their verifiers."""

    def __init__(self) -> None:
        self._verifiers: dict[str, FormatVerifier] = {}

    def register(self, name: str, verifier: FormatVerifier) -> None:
        self._verifiers[name] = verifier

    def verify(self, name: str, value: str) -> None:
        verifier = self._verifiers.get(name)
        if verifier is None:
            raise KeyError(f"no verifier registered for format '{name}'")
        verifier(value)

    def __contains__(self, name: object) -> bool:
        return name in self._verifiers


FORMATS = FormatRegistry()


def _as_text(raw: Any) -> str:
    if isinstance(raw, bool):
        return "1" if raw else "0"
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    return str(raw)


def check_value(prop: Prop, raw: Any) -> Any:
    """Convert one raw value to its type and check it against prop; raise ValueError with PVE's message."""
    text = _as_text(raw)
    if prop.type == "boolean":
        lowered = text.lower()
        if lowered in _TRUE:
            return 1
        if lowered in _FALSE:
            return 0
        raise ValueError(f"type check ('boolean') failed - got '{text}'")
    if prop.type in ("integer", "number"):
        return _check_number(prop, text)
    return _check_string(prop, text)


def _check_number(prop: Prop, text: str) -> int | float:
    if prop.type == "integer":
        if not _INTEGER_RE.fullmatch(text):
            raise ValueError(f"type check ('integer') failed - got '{text}'")
        _check_range(prop, int(text))
        if prop.enum is not None and text not in prop.enum:
            raise ValueError(f"value '{text}' does not have a value in the enumeration '{', '.join(prop.enum)}'")
        return int(text)
    if not _NUMBER_RE.fullmatch(text):
        raise ValueError(f"type check ('number') failed - got '{text}'")
    number = float(text)
    _check_range(prop, number)
    return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number


def _check_range(prop: Prop, number: float) -> None:
    if prop.minimum is not None and number < prop.minimum:
        raise ValueError(f"value must have a minimum value of {_fmt_limit(prop.minimum)}")
    if prop.maximum is not None and number > prop.maximum:
        raise ValueError(f"value must have a maximum value of {_fmt_limit(prop.maximum)}")


def _fmt_limit(limit: float) -> str:
    return str(int(limit)) if float(limit).is_integer() else str(limit)


def _check_string(prop: Prop, text: str) -> str:
    if prop.max_length is not None and len(text) > prop.max_length:
        raise ValueError(f"value may only be {prop.max_length} characters long")
    if prop.min_length is not None and len(text) < prop.min_length:
        raise ValueError(f"value must be at least {prop.min_length} characters long")
    if prop.enum is not None and text not in prop.enum:
        raise ValueError(f"value '{text}' does not have a value in the enumeration '{', '.join(prop.enum)}'")
    if prop.pattern is not None and not re.fullmatch(prop.pattern, text, re.DOTALL):
        raise ValueError("value does not match the regex pattern")
    if isinstance(prop.format, PropertyFormat):
        try:
            parse_property_string(prop.format, text)
        except FormatError as exc:
            raise ValueError(f"invalid format - {exc}") from None
    elif isinstance(prop.format, str):
        try:
            FORMATS.verify(prop.format, text)
        except FormatError as exc:
            raise ValueError(f"invalid format - {exc}") from None
    return text


def parse_property_string(fmt: PropertyFormat, text: str) -> dict[str, Any]:
    """Parse `key=value,...` against fmt and return typed values; raise FormatError as PVE words it."""
    raw = _split_property_string(fmt, text)
    result: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for key, value in raw.items():
        try:
            result[key] = check_value(fmt.keys[key], value)
        except ValueError as exc:
            errors[key] = str(exc)
    for key, prop in fmt.keys.items():
        if not prop.optional and key not in raw:
            errors[key] = MISSING
    if errors:
        details = "\n".join(f"{key}: {message}" for key, message in sorted(errors.items()))
        raise FormatError(f"format error\n{details}")
    return result


def _split_property_string(fmt: PropertyFormat, text: str) -> dict[str, str]:
    raw: dict[str, str] = {}
    default_key = fmt.default_key
    for part in text.split(","):
        if part == "":
            continue
        if "=" in part:
            key, _, value = part.partition("=")
            if key not in fmt.keys:
                raise FormatError(f"invalid key in comma-separated list property: {key}")
            if key in raw:
                raise FormatError(f"duplicate key in comma-separated list property: {key}")
            raw[key] = value
        elif default_key is not None:
            if default_key in raw:
                raise FormatError(f"duplicate key in comma-separated list property: {default_key}")
            raw[default_key] = part
        else:
            raise FormatError("missing key in comma-separated list property")
    return raw


def print_property_string(fmt: PropertyFormat, values: Mapping[str, Any], skip: Iterable[str] = ()) -> str:
    """Print values as PVE does: the default key bare, then required keys, then the rest, each group sorted."""
    skipped = set(skip)
    default_key = fmt.default_key
    parts: list[str] = []
    if default_key is not None and values.get(default_key) is not None and default_key not in skipped:
        parts.append(str(values[default_key]))
        skipped.add(default_key)

    def order(key: str) -> tuple[int, str]:
        prop = fmt.keys.get(key)
        return (0 if prop is not None and not prop.optional else 1, key)

    for key in sorted(values, key=order):
        value = values[key]
        if key in skipped or value is None:
            continue
        parts.append(f"{key}={value}")
    return ",".join(parts)


def validate(param_schema: ParamSchema, params: Mapping[str, Any]) -> dict[str, Any]:
    """Check every parameter against the schema and return the converted values, or raise ParamError."""
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    for name, raw in params.items():
        prop = param_schema.lookup(name)
        if prop is None:
            errors[name] = UNDEFINED
            continue
        try:
            values[name] = check_value(prop, raw)
        except ValueError as exc:
            errors[name] = str(exc)
    for name in param_schema.required():
        if name not in params:
            errors[name] = MISSING
    for name in params:
        prop = param_schema.lookup(name)
        if prop is not None and prop.requires and prop.requires not in params:
            errors.setdefault(prop.requires, f"missing property - '{name}' requires this property")
    if errors:
        raise ParamError(errors)
    return values
