"""Rule loading and guarded execution with wasmtime.

Rule ABI: a module exports ``price`` with the signature
``(base_cents i64, cost_cents i64, min_margin_bp i32, stock i32, sold_last_hour i32, days_to_expiry i32,
flags i32) -> (price_cents i64, promo_ptr i32, promo_len i32)`` and, when it returns a promo, a ``memory`` that
contains the promo id at ``promo_ptr``. Unknown stock or sales velocity is -1. Flags bit 0 means the item is
perishable with a known expiry date, and only then is ``days_to_expiry`` meaningful (0 = expires today).

Each call runs in a fresh store and instance, so no state leaks between calls, under three limits: fuel (a
count of executed instructions), a memory size cap, and an epoch deadline that a ticker thread advances.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import wasmtime
import yaml

log = logging.getLogger("retail_edge.rules.engine")

PROMO_PATTERN = re.compile(rb"[a-z0-9][a-z0-9-]{0,63}")
PRICE_PARAMS = [wasmtime.ValType.i64(), wasmtime.ValType.i64()] + [wasmtime.ValType.i32()] * 5
PRICE_RESULTS = [wasmtime.ValType.i64(), wasmtime.ValType.i32(), wasmtime.ValType.i32()]
# A rule may ask for at most this multiple of the base price; more is treated as a garbage result.
MAX_PRICE_FACTOR = 10
FLAG_PERISHABLE = 1


class RuleLoadError(Exception):
    """A manifest or module that cannot be loaded; the message names the file and the problem."""


@dataclass(frozen=True)
class Limits:
    fuel: int  # instructions per call; 0 disables fuel metering
    memory_bytes: int
    time_limit_s: float
    epoch_tick_s: float = 0.005

    @property
    def epoch_ticks(self) -> int:
        return max(1, math.ceil(self.time_limit_s / self.epoch_tick_s))


@dataclass(frozen=True)
class Signals:
    """The local facts a rule prices from."""

    base_cents: int
    cost_cents: int
    min_margin: float
    stock: int  # available units, -1 when unknown
    sold_last_hour: int  # units, -1 when unknown
    days_to_expiry: int | None  # None when the item is not perishable or has no expiry date

    @property
    def floor_cents(self) -> int:
        """Return the lowest price the host serves: cost * (1 + min_margin), rounded up to a cent."""
        return math.ceil(round(self.cost_cents * (1 + self.min_margin), 6))


@dataclass(frozen=True)
class RuleOutcome:
    """Result of a rule call after the guards: the price, an optional promo and the outcome."""

    price_cents: int
    promo_id: str | None
    outcome: str  # ok, floor_applied, trap, fuel_exhausted, timeout, invalid_result, error
    detail: str = ""


@dataclass(frozen=True)
class Rule:
    name: str
    source: Path
    module: wasmtime.Module
    categories: frozenset[str] = field(default_factory=frozenset)
    skus: frozenset[str] = field(default_factory=frozenset)

    def matches(self, sku: str, category: str) -> bool:
        return (not self.categories or category in self.categories) and (not self.skus or sku in self.skus)


@dataclass(frozen=True)
class RuleSet:
    """An immutable set of loaded rules; a reload builds a new one and swaps it in."""

    rules: tuple[Rule, ...]
    version: str
    fingerprint: tuple[tuple[str, int, int], ...]

    def rule_for(self, sku: str, category: str) -> Rule | None:
        return next((rule for rule in self.rules if rule.matches(sku, category)), None)


class RuleEngine:
    """One wasmtime engine with fuel and epoch interruption, plus the ticker thread that drives the epoch."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        config = wasmtime.Config()
        config.consume_fuel = True
        config.epoch_interruption = True
        self.engine = wasmtime.Engine(config)
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="wasm-epoch", daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(self.limits.epoch_tick_s):
            self.engine.increment_epoch()

    def close(self) -> None:
        self._stop.set()

    # -- loading ---------------------------------------------------------------------------------------------

    def compile(self, path: Path) -> wasmtime.Module:
        """Compile a .wat or .wasm file, preferring a deploy-time .wasm next to a .wat that is at least as new."""
        compiled = path.with_suffix(".wasm")
        if path.suffix == ".wat" and compiled.exists() and compiled.stat().st_mtime >= path.stat().st_mtime:
            path = compiled
        try:
            module = wasmtime.Module.from_file(self.engine, str(path))
        except (wasmtime.WasmtimeError, OSError) as exc:
            raise RuleLoadError(f"cannot compile rule module {path}: {exc}") from exc
        price = next((export for export in module.exports if export.name == "price"), None)
        if price is None or not isinstance(price.type, wasmtime.FuncType):
            raise RuleLoadError(f"rule module {path} does not export a function 'price'")
        params = [str(param) for param in price.type.params]
        results = [str(result) for result in price.type.results]
        if params != [str(t) for t in PRICE_PARAMS] or results != [str(t) for t in PRICE_RESULTS]:
            raise RuleLoadError(
                f"rule module {path}: 'price' has params {params} and results {results}; expected "
                "(i64 i64 i32 i32 i32 i32 i32) -> (i64 i32 i32)"
            )
        return module

    def load(self, rules_dir: Path) -> RuleSet:
        """Load ``rules_dir/rules.yaml`` and compile every module it names."""
        manifest_path = rules_dir / "rules.yaml"
        try:
            manifest = yaml.safe_load(manifest_path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise RuleLoadError(f"cannot read rules manifest {manifest_path}: {exc}") from exc
        entries = manifest.get("rules") if isinstance(manifest, dict) else None
        if not isinstance(entries, list):
            raise RuleLoadError(f"{manifest_path} needs a list 'rules' of {{name, module, categories?, skus?}}")
        rules = []
        for index, entry in enumerate(entries):
            if (
                not isinstance(entry, dict)
                or not isinstance(entry.get("name"), str)
                or not isinstance(entry.get("module"), str)
            ):
                raise RuleLoadError(f"{manifest_path}: rules[{index}] needs string 'name' and 'module'")
            rules.append(
                Rule(
                    name=entry["name"],
                    source=rules_dir / entry["module"],
                    module=self.compile(rules_dir / entry["module"]),
                    categories=frozenset(_string_list(entry, "categories", manifest_path, index)),
                    skus=frozenset(_string_list(entry, "skus", manifest_path, index)),
                )
            )
        fingerprint = fingerprint_dir(rules_dir)
        version = hashlib.sha256(repr(fingerprint).encode()).hexdigest()[:12]
        return RuleSet(rules=tuple(rules), version=version, fingerprint=fingerprint)

    # -- execution -------------------------------------------------------------------------------------------

    def run(self, rule: Rule, signals: Signals) -> RuleOutcome:
        """Call the rule under the limits and apply the guards; a failing rule yields the base price."""
        try:
            price, promo = self._call(rule, signals)
        except wasmtime.Trap as exc:
            code = exc.trap_code
            if code == wasmtime.TrapCode.OUT_OF_FUEL:
                return RuleOutcome(signals.base_cents, None, "fuel_exhausted", "the rule used all its fuel")
            if code == wasmtime.TrapCode.INTERRUPT:
                return RuleOutcome(
                    signals.base_cents, None, "timeout", f"the rule ran past {self.limits.time_limit_s * 1000:.0f} ms"
                )
            return RuleOutcome(signals.base_cents, None, "trap", f"wasm trap {code}: {exc.message.splitlines()[-1]}")
        except (wasmtime.WasmtimeError, InvalidResult) as exc:
            outcome = "invalid_result" if isinstance(exc, InvalidResult) else "error"
            return RuleOutcome(signals.base_cents, None, outcome, str(exc).splitlines()[-1][:300])
        floor = signals.floor_cents
        if price < floor:
            return RuleOutcome(floor, promo, "floor_applied", f"rule asked {price}, floor is {floor}")
        return RuleOutcome(price, promo, "ok")

    def _call(self, rule: Rule, signals: Signals) -> tuple[int, str | None]:
        store = wasmtime.Store(self.engine)
        store.set_limits(memory_size=self.limits.memory_bytes)
        # wasmtime has no way to switch fuel off per store once consume_fuel is on; a huge budget does it.
        store.set_fuel(self.limits.fuel if self.limits.fuel > 0 else 2**63 - 1)
        store.set_epoch_deadline(self.limits.epoch_ticks)

        instance = wasmtime.Instance(store, rule.module, [])
        exports = instance.exports(store)
        price_fn = exports["price"]
        flags = FLAG_PERISHABLE if signals.days_to_expiry is not None else 0
        days = signals.days_to_expiry if signals.days_to_expiry is not None else 0
        result = price_fn(
            store,
            signals.base_cents,
            signals.cost_cents,
            round(signals.min_margin * 10_000),
            _clamp_i32(signals.stock),
            _clamp_i32(signals.sold_last_hour),
            _clamp_i32(days),
            flags,
        )

        price, promo_ptr, promo_len = _unpack(result)
        if not 0 < price <= signals.base_cents * MAX_PRICE_FACTOR:
            raise InvalidResult(f"price {price} is outside 1..{signals.base_cents * MAX_PRICE_FACTOR} cents")
        if promo_len == 0:
            return price, None

        memory = exports.get("memory")
        if not isinstance(memory, wasmtime.Memory):
            raise InvalidResult("the rule returned a promo but exports no memory")
        if promo_ptr < 0 or promo_len < 0 or promo_len > 64 or promo_ptr + promo_len > memory.data_len(store):
            raise InvalidResult(f"promo pointer {promo_ptr} or length {promo_len} is out of bounds")
        promo = bytes(memory.read(store, promo_ptr, promo_ptr + promo_len))
        if not PROMO_PATTERN.fullmatch(promo):
            raise InvalidResult(f"promo id {promo[:64]!r} is not lowercase letters, digits and '-'")
        return price, promo.decode()


class InvalidResult(ValueError):
    """A rule returned values outside the ABI's valid range."""


def _unpack(result: Any) -> tuple[int, int, int]:
    if not isinstance(result, Sequence) or len(result) != 3 or not all(isinstance(v, int) for v in result):
        raise InvalidResult(f"'price' returned {result!r}, expected three integers")
    return int(result[0]), int(result[1]), int(result[2])


def _clamp_i32(value: int) -> int:
    return max(-(2**31), min(2**31 - 1, value))


def _string_list(entry: dict[str, Any], key: str, manifest: Path, index: int) -> list[str]:
    values = entry.get(key, [])
    if not isinstance(values, list) or not all(isinstance(value, str) for value in values):
        raise RuleLoadError(f"{manifest}: rules[{index}].{key} must be a list of strings")
    return values


def fingerprint_dir(rules_dir: Path) -> tuple[tuple[str, int, int], ...]:
    """Return (name, mtime_ns, size) of every rule file, to notice changes without reading them."""
    entries = []
    for path in sorted(rules_dir.iterdir()) if rules_dir.is_dir() else []:
        if path.suffix in (".yaml", ".wat", ".wasm"):
            stat = path.stat()
            entries.append((path.name, stat.st_mtime_ns, stat.st_size))
    return tuple(entries)


def timed_run(engine: RuleEngine, rule: Rule, signals: Signals) -> tuple[RuleOutcome, float]:
    started = time.perf_counter()
    outcome = engine.run(rule, signals)
    return outcome, time.perf_counter() - started
