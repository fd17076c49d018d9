"""Deterministic seed data for the lab HQ: catalog, per-store stock and cashiers."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from argon2 import PasswordHasher

# Category -> (perishable, shelf life range in days, typical price range in cents, margin range).
CATEGORIES: dict[str, tuple[bool, tuple[int, int], tuple[int, int], tuple[float, float]]] = {
    "produce": (True, (1, 10), (79, 699), (0.05, 0.15)),
    "dairy": (True, (3, 21), (99, 899), (0.05, 0.12)),
    "bakery": (True, (1, 5), (149, 799), (0.08, 0.20)),
    "meat": (True, (2, 9), (399, 2999), (0.06, 0.14)),
    "grocery": (False, (0, 0), (89, 1299), (0.10, 0.25)),
    "household": (False, (0, 0), (199, 2499), (0.15, 0.30)),
    "personal-care": (False, (0, 0), (249, 1999), (0.15, 0.35)),
    "electronics": (False, (0, 0), (999, 49999), (0.08, 0.20)),
}
ADJECTIVES = ("Organic", "Fresh", "Classic", "Family", "Premium", "Everyday", "Mini", "Large", "Light", "Spiced")
NOUNS = {
    "produce": ("Apples", "Bananas", "Tomatoes", "Spinach", "Carrots", "Avocados", "Berries"),
    "dairy": ("Milk", "Yogurt", "Butter", "Cheddar", "Cream", "Kefir"),
    "bakery": ("Sourdough", "Croissants", "Bagels", "Rye Bread", "Muffins"),
    "meat": ("Chicken Breast", "Ground Beef", "Pork Chops", "Salmon Fillet", "Sausages"),
    "grocery": ("Pasta", "Rice", "Olive Oil", "Cereal", "Coffee Beans", "Tea", "Canned Beans"),
    "household": ("Dish Soap", "Paper Towels", "Detergent", "Sponges", "Trash Bags"),
    "personal-care": ("Shampoo", "Toothpaste", "Soap Bar", "Deodorant", "Sunscreen"),
    "electronics": ("USB-C Cable", "Earbuds", "Power Bank", "LED Bulb", "AA Batteries"),
}
AISLES = 24
BAYS = ("A", "B", "C", "D", "E", "F")
CASHIERS_PER_STORE = 6

# Lab-strength argon2 parameters: the hash format is the standard one, only cheaper to compute.
LAB_PASSWORD_HASHER = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)


@dataclass(frozen=True)
class CatalogItem:
    sku: str
    name: str
    category: str
    base_price_cents: int
    cost_cents: int
    min_margin: float
    perishable: bool
    expiry_date: str | None


@dataclass(frozen=True)
class StockItem:
    sku: str
    on_hand: int
    aisle: str
    bay: str


def sku_code(index: int) -> str:
    """Return the SKU code of the index-th seeded catalog item (SKU-00001 is index 1)."""
    return f"SKU-{index:05d}"


def generate_catalog(seed: int, count: int, today: dt.date) -> list[CatalogItem]:
    rng = random.Random(seed)  # noqa: S311 - reproducible lab data, not secrets
    categories = list(CATEGORIES)
    items: list[CatalogItem] = []
    for index in range(1, count + 1):
        category = rng.choice(categories)
        perishable, shelf_life, price_range, margin_range = CATEGORIES[category]
        base_price = rng.randint(*price_range)
        # Cost leaves between 20 % and 45 % gross margin on the base price.
        cost_share = rng.uniform(0.55, 0.80)
        cost = max(1, round(base_price * cost_share))
        # The minimum margin never puts the floor price, cost * (1 + min_margin), above the base price.
        min_margin = max(0.0, min(rng.uniform(*margin_range), base_price / cost - 1.01))
        expiry = (today + dt.timedelta(days=rng.randint(*shelf_life))).isoformat() if perishable else None
        name = f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS[category])}"
        items.append(
            CatalogItem(
                sku=sku_code(index),
                name=name,
                category=category,
                base_price_cents=base_price,
                cost_cents=cost,
                min_margin=round(min_margin, 3),
                perishable=perishable,
                expiry_date=expiry,
            )
        )
    return items


def generate_stock(seed: int, store_id: str, skus: list[str]) -> list[StockItem]:
    # The store id enters the seed so that two stores get different shelves.
    rng = random.Random(f"{seed}:{store_id}")  # noqa: S311 - reproducible lab data
    stock: list[StockItem] = []
    for sku in skus:
        on_hand = 0 if rng.random() < 0.05 else rng.randint(1, 60)
        stock.append(StockItem(sku=sku, on_hand=on_hand, aisle=str(rng.randint(1, AISLES)), bay=rng.choice(BAYS)))
    return stock


def lab_cashier_password(cashier_id: str) -> str:
    """Return the password of a seeded lab cashier (lab data only, never a production scheme)."""
    return f"lab-pass-{cashier_id}"


def generate_cashiers(store_id: str) -> list[tuple[str, str, str, list[str]]]:
    """Return (cashier_id, name, argon2 password hash, roles) for the seeded cashiers of a store."""
    cashiers = []
    for number in range(1, CASHIERS_PER_STORE + 1):
        cashier_id = f"c{number:03d}"
        roles = ["cashier", "supervisor"] if number == 1 else ["cashier"]
        password_hash = LAB_PASSWORD_HASHER.hash(lab_cashier_password(cashier_id))
        cashiers.append((cashier_id, f"Cashier {number} of {store_id}", password_hash, roles))
    return cashiers
