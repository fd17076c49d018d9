"""Validation, pricing and fingerprinting of sale requests, and the JSON encodings the storage layer uses.

Pure functions without I/O, so that the HTTP layer, the storage layer and the tests share one definition of
what a valid sale is. Money is always an integer number of cents.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

IDEMPOTENCY_KEY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
IDENTIFIER_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_LINES = 500
MAX_QUANTITY = 10_000
MAX_UNIT_PRICE_CENTS = 10_000_000
MAX_PAYMENTS = 10
PAYMENT_METHODS = frozenset({"cash", "card", "gift_card", "voucher", "mobile"})
SALE_FIELDS = frozenset({"register_id", "lines", "payments"})
LINE_FIELDS = frozenset({"sku", "qty", "unit_price_cents"})
PAYMENT_FIELDS = frozenset({"method", "amount_cents"})


class InvalidSale(ValueError):
    """A sale request that cannot be accepted; ``field`` names the offending part of the body."""

    def __init__(self, field: str, message: str, code: str = "invalid_sale") -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.code = code


@dataclass(frozen=True)
class SaleLine:
    sku: str
    qty: int
    # None means "charge the catalog price"; a register that applied a promotion sends its own price.
    unit_price_cents: int | None


@dataclass(frozen=True)
class Payment:
    method: str
    amount_cents: int


@dataclass(frozen=True)
class SaleRequest:
    """A validated sale request as a register sent it, before catalog prices are filled in."""

    register_id: str
    lines: tuple[SaleLine, ...]
    payments: tuple[Payment, ...]


def canonical_json(document: Any) -> str:
    """Serialize a JSON document with sorted keys and no whitespace, so equal documents give equal text."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def compact_json(document: Any) -> str:
    """Serialize a JSON document without whitespace, keeping the key order of the dicts."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def request_fingerprint(request: SaleRequest, cashier_id: str) -> str:
    """Return the SHA-256 of a sale request and its cashier, used to tell a retry from a reused idempotency key.

    The hashed text is the repr of a tuple of strings, integers and None, which Python renders the same way on
    every run and version, and which is several times cheaper to build than canonical JSON.
    """
    content = (
        cashier_id,
        request.register_id,
        tuple((line.sku, line.qty, line.unit_price_cents) for line in request.lines),
        tuple((payment.method, payment.amount_cents) for payment in request.payments),
    )
    return hashlib.sha256(repr(content).encode()).hexdigest()


def _shown(value: Any) -> str:
    """Render a value from a request body as JSON for an error message, shortened."""
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def validate_idempotency_key(key: str | None) -> str:
    if key is None or key == "":
        raise InvalidSale(
            "Idempotency-Key", "header is missing; send a client-generated unique key per sale", "missing_key"
        )
    if not IDEMPOTENCY_KEY_PATTERN.fullmatch(key):
        raise InvalidSale(
            "Idempotency-Key",
            f"invalid value {key[:40]!r}: use 1-128 characters from A-Z a-z 0-9 . _ : - (a UUID fits)",
            "invalid_key",
        )
    return key


def _require_int(value: Any, field: str, minimum: int, maximum: int) -> int:
    # bool is an int subclass in Python; JSON true must not pass as qty 1.
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidSale(field, f"must be an integer, got {_shown(value)}")
    if not minimum <= value <= maximum:
        raise InvalidSale(field, f"must be between {minimum} and {maximum}, got {value}")
    return value


def _reject_unknown_fields(document: Mapping[str, Any], allowed: frozenset[str], field: str) -> None:
    unknown = sorted(set(document) - allowed)
    if unknown:
        raise InvalidSale(field, f"unknown fields {unknown}; allowed: {sorted(allowed)}")


def _parse_line(index: int, raw: Any) -> SaleLine:
    field = f"lines[{index}]"
    if not isinstance(raw, dict):
        raise InvalidSale(field, "must be an object with sku and qty")
    _reject_unknown_fields(raw, LINE_FIELDS, field)
    sku = raw.get("sku")
    if not isinstance(sku, str) or not IDENTIFIER_PATTERN.fullmatch(sku):
        raise InvalidSale(f"{field}.sku", f"must be a SKU code (letters, digits, . _ -), got {_shown(sku)}")
    qty = _require_int(raw.get("qty"), f"{field}.qty", 1, MAX_QUANTITY)
    price = raw.get("unit_price_cents")
    if price is not None:
        price = _require_int(price, f"{field}.unit_price_cents", 0, MAX_UNIT_PRICE_CENTS)
    return SaleLine(sku=sku, qty=qty, unit_price_cents=price)


def _parse_payment(index: int, raw: Any) -> Payment:
    field = f"payments[{index}]"
    if not isinstance(raw, dict):
        raise InvalidSale(field, "must be an object with method and amount_cents")
    _reject_unknown_fields(raw, PAYMENT_FIELDS, field)
    method = raw.get("method")
    if method not in PAYMENT_METHODS:
        raise InvalidSale(f"{field}.method", f"must be one of {sorted(PAYMENT_METHODS)}, got {_shown(method)}")
    amount = _require_int(raw.get("amount_cents"), f"{field}.amount_cents", 0, MAX_UNIT_PRICE_CENTS * MAX_QUANTITY)
    return Payment(method=method, amount_cents=amount)


def parse_sale_request(body: Any) -> SaleRequest:
    """Validate a decoded JSON body of ``POST /sales`` and return it as a SaleRequest, or raise InvalidSale."""
    if not isinstance(body, dict):
        raise InvalidSale("body", "must be a JSON object with register_id and lines")
    _reject_unknown_fields(body, SALE_FIELDS, "body")

    register_id = body.get("register_id")
    if not isinstance(register_id, str) or not IDENTIFIER_PATTERN.fullmatch(register_id):
        raise InvalidSale("register_id", f"must be 1-64 characters from A-Z a-z 0-9 . _ -, got {_shown(register_id)}")

    raw_lines = body.get("lines")
    if not isinstance(raw_lines, list) or not raw_lines:
        raise InvalidSale("lines", "must be a non-empty list")
    if len(raw_lines) > MAX_LINES:
        raise InvalidSale("lines", f"has {len(raw_lines)} entries, the maximum is {MAX_LINES}")
    lines = tuple(_parse_line(index, raw) for index, raw in enumerate(raw_lines))

    raw_payments = body.get("payments", [])
    if not isinstance(raw_payments, list):
        raise InvalidSale("payments", "must be a list")
    if len(raw_payments) > MAX_PAYMENTS:
        raise InvalidSale("payments", f"has {len(raw_payments)} entries, the maximum is {MAX_PAYMENTS}")
    payments = tuple(_parse_payment(index, raw) for index, raw in enumerate(raw_payments))

    return SaleRequest(register_id=register_id, lines=lines, payments=payments)


def price_sale(request: SaleRequest, catalog_prices: Mapping[str, tuple[str, int]]) -> tuple[list[dict[str, Any]], int]:
    """Fill in names and catalog prices and return the priced lines and the total in cents.

    ``catalog_prices`` maps each SKU of the request to (name, base price in cents). A SKU missing from it is
    rejected, and so is a payment total that does not match the sale total.
    """
    priced: list[dict[str, Any]] = []
    total = 0
    for index, line in enumerate(request.lines):
        entry = catalog_prices.get(line.sku)
        if entry is None:
            raise InvalidSale(
                f"lines[{index}].sku",
                f"SKU {line.sku!r} is not in the local catalog replica; check the code or wait for the next"
                " catalog sync",
                "unknown_sku",
            )
        name, catalog_price = entry
        unit_price = catalog_price if line.unit_price_cents is None else line.unit_price_cents
        line_total = unit_price * line.qty
        total += line_total
        priced.append(
            {
                "sku": line.sku,
                "name": name,
                "qty": line.qty,
                "unit_price_cents": unit_price,
                "line_total_cents": line_total,
            }
        )

    if request.payments:
        paid = sum(payment.amount_cents for payment in request.payments)
        if paid != total:
            raise InvalidSale(
                "payments", f"add up to {paid} cents but the sale total is {total} cents", "payment_mismatch"
            )
    return priced, total
