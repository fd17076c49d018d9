"""Validation of the catalog and cashier documents that HQ serves, before they replace the local replicas.

A document with one invalid entry is rejected whole: the POS keeps selling on the previous replica instead of
dropping SKUs or cashiers it cannot read.
"""

from __future__ import annotations

from typing import Any

from retail_edge.pos.sales import IDENTIFIER_PATTERN
from retail_edge.pos.storage import CashierRecord, CatalogItem


class ReplicaInvalid(ValueError):
    """HQ sent a catalog or cashier document that does not have the documented shape."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ReplicaInvalid(message)


def parse_catalog(document: dict[str, Any]) -> list[CatalogItem]:
    """Return the catalog items of ``GET .../catalog``; each needs sku, name and an integer base_price_cents."""
    items = document.get("items")
    _require(isinstance(items, list), "catalog: 'items' must be a list")
    parsed: list[CatalogItem] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        _require(isinstance(item, dict), f"catalog: items[{index}] must be an object")
        sku, name, price = item.get("sku"), item.get("name"), item.get("base_price_cents")
        _require(
            isinstance(sku, str) and IDENTIFIER_PATTERN.fullmatch(sku) is not None,
            f"catalog: items[{index}].sku {sku!r} is invalid",
        )
        _require(sku not in seen, f"catalog: SKU {sku!r} appears twice")
        _require(isinstance(name, str) and name != "", f"catalog: items[{index}].name must be a non-empty string")
        _require(
            isinstance(price, int) and not isinstance(price, bool) and price >= 0,
            f"catalog: items[{index}].base_price_cents must be a non-negative integer, got {price!r}",
        )
        seen.add(sku)
        parsed.append(CatalogItem(sku=sku, name=name, base_price_cents=price, document=item))
    return parsed


def parse_cashiers(document: dict[str, Any]) -> tuple[list[CashierRecord], list[str]]:
    """Return the cashiers and the revoked cashier ids of ``GET .../cashiers``.

    Only argon2 hashes in PHC string format are accepted, so that a plain or weakly hashed password from a
    misconfigured HQ never lands in the store database.
    """
    cashiers = document.get("cashiers")
    revoked = document.get("revoked", [])
    _require(isinstance(cashiers, list), "cashiers: 'cashiers' must be a list")
    _require(
        isinstance(revoked, list) and all(isinstance(entry, str) for entry in revoked),
        "cashiers: 'revoked' must be a list of cashier ids",
    )
    parsed: list[CashierRecord] = []
    for index, entry in enumerate(cashiers):
        _require(isinstance(entry, dict), f"cashiers: cashiers[{index}] must be an object")
        cashier_id, password_hash = entry.get("cashier_id"), entry.get("password_hash")
        roles = entry.get("roles", [])
        _require(
            isinstance(cashier_id, str) and IDENTIFIER_PATTERN.fullmatch(cashier_id) is not None,
            f"cashiers: cashiers[{index}].cashier_id {cashier_id!r} is invalid",
        )
        _require(
            isinstance(password_hash, str) and password_hash.startswith("$argon2"),
            f"cashiers: cashier {cashier_id} has no argon2 password_hash (expected a $argon2id$... string)",
        )
        _require(
            isinstance(roles, list) and all(isinstance(role, str) for role in roles),
            f"cashiers: cashier {cashier_id} has invalid roles {roles!r}",
        )
        name = entry.get("name")
        parsed.append(
            CashierRecord(
                cashier_id=cashier_id,
                name=name if isinstance(name, str) else cashier_id,
                password_hash=password_hash,
                roles=tuple(roles),
            )
        )
    return parsed, list(revoked)
