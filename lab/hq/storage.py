"""SQLite storage of the lab HQ: catalog, per-store stock with a change log, sales ingest and cashiers.

Every method that writes runs in one transaction, so a batch of sales or stock changes is applied whole or not at
all. Stock changes carry absolute on-hand values, which makes replaying a change harmless.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lab.hq import seed as seeding

log = logging.getLogger("lab.hq.storage")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS catalog (
    sku TEXT PRIMARY KEY, name TEXT NOT NULL, category TEXT NOT NULL,
    base_price_cents INTEGER NOT NULL, cost_cents INTEGER NOT NULL, min_margin REAL NOT NULL,
    perishable INTEGER NOT NULL, expiry_date TEXT, updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS stores (
    store_id TEXT PRIMARY KEY,
    cursor_epoch INTEGER NOT NULL DEFAULT 1,
    pruned_through_seq INTEGER NOT NULL DEFAULT 0,
    cashiers_version INTEGER NOT NULL DEFAULT 1,
    duplicates INTEGER NOT NULL DEFAULT 0,
    conflicts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS stock (
    store_id TEXT NOT NULL, sku TEXT NOT NULL, on_hand INTEGER NOT NULL,
    aisle TEXT NOT NULL, bay TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (store_id, sku)
);
CREATE TABLE IF NOT EXISTS stock_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, store_id TEXT NOT NULL, sku TEXT NOT NULL,
    on_hand INTEGER NOT NULL, aisle TEXT NOT NULL, bay TEXT NOT NULL, updated_at TEXT NOT NULL, sale_key TEXT
);
CREATE INDEX IF NOT EXISTS stock_changes_store_seq ON stock_changes (store_id, seq);
CREATE TABLE IF NOT EXISTS sales (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, store_id TEXT NOT NULL, idempotency_key TEXT NOT NULL,
    content_sha256 TEXT NOT NULL, sale_json TEXT NOT NULL, received_at TEXT NOT NULL,
    UNIQUE (store_id, idempotency_key)
);
CREATE TABLE IF NOT EXISTS cashiers (
    store_id TEXT NOT NULL, cashier_id TEXT NOT NULL, name TEXT NOT NULL, password_hash TEXT NOT NULL,
    roles TEXT NOT NULL, revoked INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (store_id, cashier_id)
);
"""

MAX_PAGE = 5000
MAX_SALES_PER_BATCH = 1000
MAX_KEY_LENGTH = 200
# Sales applied within this window are listed on the first snapshot page, so that a store can tell which of
# its own local sales the snapshot already reflects.
APPLIED_SALES_WINDOW_S = 48 * 3600


class RequestError(ValueError):
    """A request that is invalid as sent; the message names the field and the problem."""


class CursorExpired(Exception):
    """A cursor that is unknown, from another store, or older than the retained change log."""


class UnknownStore(LookupError):
    pass


def utc_iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _encode_token(*parts: object) -> str:
    raw = "|".join(str(part) for part in parts).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str, fields: int) -> list[str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValueError("not a token issued by this HQ") from exc
    parts = raw.split("|")
    if len(parts) != fields:
        raise ValueError("not a token issued by this HQ")
    return parts


def sale_digest(sale: dict[str, Any]) -> str:
    canonical = json.dumps(sale, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class HqStorage:
    """Lab HQ state in one SQLite file; safe for a single event-loop thread."""

    def __init__(
        self,
        path: Path,
        *,
        seed: int,
        sku_count: int,
        change_retention: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.seed = seed
        self.change_retention = change_retention
        self.clock = clock
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        # FULL: an "applied" answer to a sales batch must survive a power cut, because the
        # store marks those sales synced and never sends them again.
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
        self._seed_catalog(sku_count)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row["value"])

    def _seed_catalog(self, sku_count: int) -> None:
        if self._meta("seeded_at") is not None:
            return
        now = self.clock()
        today = dt.datetime.fromtimestamp(now, dt.UTC).date()
        items = seeding.generate_catalog(self.seed, sku_count, today)
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO catalog VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        i.sku,
                        i.name,
                        i.category,
                        i.base_price_cents,
                        i.cost_cents,
                        i.min_margin,
                        int(i.perishable),
                        i.expiry_date,
                        utc_iso(now),
                    )
                    for i in items
                ],
            )
            db.execute("INSERT INTO meta VALUES ('seeded_at', ?), ('catalog_version', '1')", (utc_iso(now),))
        log.info("seeded catalog", extra={"skus": sku_count, "seed": self.seed})

    # -- stores ---------------------------------------------------------------------------------------------

    def ensure_store(self, store_id: str) -> None:
        """Create a store with seeded stock and cashiers the first time it is named."""
        if self.db.execute("SELECT 1 FROM stores WHERE store_id = ?", (store_id,)).fetchone():
            return
        skus = [row["sku"] for row in self.db.execute("SELECT sku FROM catalog ORDER BY sku")]
        stock = seeding.generate_stock(self.seed, store_id, skus)
        cashiers = seeding.generate_cashiers(store_id)
        now = utc_iso(self.clock())
        with self.transaction() as db:
            db.execute("INSERT INTO stores (store_id) VALUES (?)", (store_id,))
            db.executemany(
                "INSERT INTO stock VALUES (?, ?, ?, ?, ?, ?)",
                [(store_id, s.sku, s.on_hand, s.aisle, s.bay, now) for s in stock],
            )
            db.executemany(
                "INSERT INTO cashiers VALUES (?, ?, ?, ?, ?, 0)",
                [(store_id, cid, name, pw_hash, json.dumps(roles)) for cid, name, pw_hash, roles in cashiers],
            )
        log.info("seeded store", extra={"store_id": store_id, "skus": len(stock), "cashiers": len(cashiers)})

    def _store(self, store_id: str) -> sqlite3.Row:
        row = self.db.execute("SELECT * FROM stores WHERE store_id = ?", (store_id,)).fetchone()
        if row is None:
            raise UnknownStore(store_id)
        return row

    def _last_seq(self) -> int:
        row = self.db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'stock_changes'").fetchone()
        return 0 if row is None else int(row["seq"])

    # -- stock feed ------------------------------------------------------------------------------------------

    def _cursor(self, store_id: str, epoch: int, seq: int) -> str:
        return _encode_token("c1", store_id, epoch, seq)

    def _parse_cursor(self, store: sqlite3.Row, cursor: str) -> int:
        try:
            version, store_id, epoch, seq = _decode_token(cursor, 4)
            parsed_epoch, parsed_seq = int(epoch), int(seq)
        except ValueError as exc:
            raise CursorExpired(f"cursor {cursor!r} is not one this HQ issued") from exc
        if version != "c1" or store_id != store["store_id"]:
            raise CursorExpired(f"cursor {cursor!r} was issued for another store or format")
        if parsed_epoch != store["cursor_epoch"]:
            raise CursorExpired(f"cursor {cursor!r} predates a cursor reset; take a new snapshot")
        if parsed_seq < store["pruned_through_seq"]:
            raise CursorExpired(f"cursor {cursor!r} is older than the retained change log; take a new snapshot")
        return parsed_seq

    @staticmethod
    def _item(row: sqlite3.Row) -> dict[str, Any]:
        return {
            "sku": row["sku"],
            "on_hand": row["on_hand"],
            "location": {"aisle": row["aisle"], "bay": row["bay"]},
            "updated_at": row["updated_at"],
        }

    def snapshot(self, store_id: str, page_token: str | None, limit: int) -> dict[str, Any]:
        store = self._store(store_id)
        limit = _check_limit(limit)
        if page_token:
            try:
                epoch_text, seq_text, after_sku = _decode_token(page_token, 3)
                epoch, snapshot_seq = int(epoch_text), int(seq_text)
            except ValueError as exc:
                raise RequestError(f"page_token {page_token!r} is invalid; start again without page_token") from exc
        else:
            epoch, snapshot_seq, after_sku = store["cursor_epoch"], self._last_seq(), ""
        rows = self.db.execute(
            "SELECT * FROM stock WHERE store_id = ? AND sku > ? ORDER BY sku LIMIT ?",
            (store_id, after_sku, limit + 1),
        ).fetchall()
        next_token = _encode_token(epoch, snapshot_seq, rows[limit - 1]["sku"]) if len(rows) > limit else None
        page: dict[str, Any] = {
            "cursor": self._cursor(store_id, epoch, snapshot_seq),
            "items": [self._item(row) for row in rows[:limit]],
            "next_page_token": next_token,
        }
        if not page_token:
            since = utc_iso(self.clock() - APPLIED_SALES_WINDOW_S)
            page["applied_sales"] = [
                row["idempotency_key"]
                for row in self.db.execute(
                    "SELECT idempotency_key FROM sales WHERE store_id = ? AND received_at >= ? ORDER BY seq",
                    (store_id, since),
                )
            ]
        return page

    def changes(self, store_id: str, after: str, limit: int) -> dict[str, Any]:
        store = self._store(store_id)
        limit = _check_limit(limit)
        after_seq = self._parse_cursor(store, after)
        rows = self.db.execute(
            "SELECT * FROM stock_changes WHERE store_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (store_id, after_seq, limit + 1),
        ).fetchall()
        returned = rows[:limit]
        next_seq = returned[-1]["seq"] if returned else after_seq
        changes = []
        for row in returned:
            item = self._item(row)
            item["sale_key"] = row["sale_key"]
            changes.append(item)
        return {
            "cursor": self._cursor(store_id, store["cursor_epoch"], next_seq),
            "changes": changes,
            "more": len(rows) > limit,
        }

    def _record_change(self, db: sqlite3.Connection, store_id: str, sku: str, sale_key: str | None) -> None:
        db.execute(
            "INSERT INTO stock_changes (store_id, sku, on_hand, aisle, bay, updated_at, sale_key) "
            "SELECT store_id, sku, on_hand, aisle, bay, updated_at, ? FROM stock WHERE store_id = ? AND sku = ?",
            (sale_key, store_id, sku),
        )

    def _prune_changes(self, db: sqlite3.Connection, store_id: str) -> None:
        row = db.execute(
            "SELECT seq FROM stock_changes WHERE store_id = ? ORDER BY seq DESC LIMIT 1 OFFSET ?",
            (store_id, self.change_retention),
        ).fetchone()
        if row is None:
            return
        db.execute("DELETE FROM stock_changes WHERE store_id = ? AND seq <= ?", (store_id, row["seq"]))
        db.execute("UPDATE stores SET pruned_through_seq = ? WHERE store_id = ?", (row["seq"], store_id))

    def set_stock(self, store_id: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        """Apply lab stock changes: each item sets ``on_hand`` or adds ``delta``, optionally with a new location."""
        self._store(store_id)
        parsed = [_parse_stock_change(index, item) for index, item in enumerate(items)]
        now = utc_iso(self.clock())
        with self.transaction() as db:
            for sku, on_hand, delta, location in parsed:
                current = db.execute("SELECT * FROM stock WHERE store_id = ? AND sku = ?", (store_id, sku)).fetchone()
                if current is None:
                    if not db.execute("SELECT 1 FROM catalog WHERE sku = ?", (sku,)).fetchone():
                        raise RequestError(f"sku {sku!r} is not in the catalog")
                    db.execute("INSERT INTO stock VALUES (?, ?, 0, '1', 'A', ?)", (store_id, sku, now))
                    current = {"on_hand": 0, "aisle": "1", "bay": "A"}
                new_on_hand = current["on_hand"] + delta if on_hand is None else on_hand
                aisle, bay = location or (current["aisle"], current["bay"])
                db.execute(
                    "UPDATE stock SET on_hand = ?, aisle = ?, bay = ?, updated_at = ? WHERE store_id = ? AND sku = ?",
                    (new_on_hand, aisle, bay, now, store_id, sku),
                )
                self._record_change(db, store_id, sku, None)
            self._prune_changes(db, store_id)
        return {"applied": len(parsed), "last_seq": self._last_seq()}

    def expire_cursors(self, store_id: str | None) -> list[str]:
        with self.transaction() as db:
            if store_id is None:
                db.execute("UPDATE stores SET cursor_epoch = cursor_epoch + 1")
                return [row["store_id"] for row in db.execute("SELECT store_id FROM stores ORDER BY store_id")]
            self._store(store_id)
            db.execute("UPDATE stores SET cursor_epoch = cursor_epoch + 1 WHERE store_id = ?", (store_id,))
            return [store_id]

    # -- catalog and cashiers ----------------------------------------------------------------------------------

    def catalog(self) -> tuple[str, dict[str, Any]]:
        version = self._meta("catalog_version") or "1"
        items = [
            {
                "sku": row["sku"],
                "name": row["name"],
                "category": row["category"],
                "base_price_cents": row["base_price_cents"],
                "cost_cents": row["cost_cents"],
                "min_margin": row["min_margin"],
                "perishable": bool(row["perishable"]),
                "expiry_date": row["expiry_date"],
                "updated_at": row["updated_at"],
            }
            for row in self.db.execute("SELECT * FROM catalog ORDER BY sku")
        ]
        return f'"catalog-{version}"', {"version": int(version), "currency": "USD", "items": items}

    def update_catalog(self, items: list[dict[str, Any]]) -> int:
        """Change catalog fields of existing SKUs (lab control); returns the new catalog version."""
        allowed = {"name", "base_price_cents", "cost_cents", "min_margin", "expiry_date", "perishable"}
        now = utc_iso(self.clock())
        with self.transaction() as db:
            for index, item in enumerate(items):
                if not isinstance(item, dict) or not isinstance(item.get("sku"), str):
                    raise RequestError(f"items[{index}] needs a string 'sku'")
                unknown = set(item) - allowed - {"sku"}
                if unknown:
                    raise RequestError(f"items[{index}] has fields that cannot change: {sorted(unknown)}")
                fields = {key: item[key] for key in allowed & set(item)}
                if "perishable" in fields:
                    fields["perishable"] = int(bool(fields["perishable"]))
                assignments = ", ".join(f"{key} = ?" for key in fields)
                cursor = db.execute(
                    f"UPDATE catalog SET {assignments}, updated_at = ? WHERE sku = ?",  # noqa: S608 - keys are allow-listed
                    (*fields.values(), now, item["sku"]),
                )
                if cursor.rowcount == 0:
                    raise RequestError(f"items[{index}]: sku {item['sku']!r} is not in the catalog")
            version = int(self._meta("catalog_version") or "1") + 1
            db.execute("UPDATE meta SET value = ? WHERE key = 'catalog_version'", (str(version),))
        return version

    def cashiers(self, store_id: str) -> tuple[str, dict[str, Any]]:
        store = self._store(store_id)
        rows = self.db.execute("SELECT * FROM cashiers WHERE store_id = ? ORDER BY cashier_id", (store_id,)).fetchall()
        version = int(store["cashiers_version"])
        body = {
            "version": version,
            "cashiers": [
                {
                    "cashier_id": row["cashier_id"],
                    "name": row["name"],
                    "password_hash": row["password_hash"],
                    "roles": json.loads(row["roles"]),
                }
                for row in rows
                if not row["revoked"]
            ],
            "revoked": [row["cashier_id"] for row in rows if row["revoked"]],
        }
        return f'"cashiers-{store_id}-{version}"', body

    def update_cashiers(self, store_id: str, add: list[dict[str, Any]], revoke: list[str]) -> int:
        """Add (or replace) and revoke cashiers (lab control); returns the new cashiers version."""
        self._store(store_id)
        with self.transaction() as db:
            for index, cashier in enumerate(add):
                if not isinstance(cashier, dict) or not all(
                    isinstance(cashier.get(key), str) for key in ("cashier_id", "password")
                ):
                    raise RequestError(f"add[{index}] needs string 'cashier_id' and 'password'")
                roles = cashier.get("roles", ["cashier"])
                db.execute(
                    "INSERT OR REPLACE INTO cashiers VALUES (?, ?, ?, ?, ?, 0)",
                    (
                        store_id,
                        cashier["cashier_id"],
                        cashier.get("name", cashier["cashier_id"]),
                        seeding.LAB_PASSWORD_HASHER.hash(cashier["password"]),
                        json.dumps(roles),
                    ),
                )
            for cashier_id in revoke:
                cursor = db.execute(
                    "UPDATE cashiers SET revoked = 1 WHERE store_id = ? AND cashier_id = ?", (store_id, cashier_id)
                )
                if cursor.rowcount == 0:
                    raise RequestError(f"revoke: cashier {cashier_id!r} does not exist in store {store_id!r}")
            db.execute("UPDATE stores SET cashiers_version = cashiers_version + 1 WHERE store_id = ?", (store_id,))
        return int(self._store(store_id)["cashiers_version"])

    # -- sales ingest ------------------------------------------------------------------------------------------

    def apply_sales(self, store_id: str, sales: Any) -> list[dict[str, str]]:
        """Apply a batch of sales atomically; a repeated key is a duplicate, or a conflict if its content differs."""
        self._store(store_id)
        entries = _parse_sales(sales)
        now = utc_iso(self.clock())
        results: list[dict[str, str]] = []
        with self.transaction() as db:
            for key, sale in entries:
                digest = sale_digest(sale)
                existing = db.execute(
                    "SELECT content_sha256 FROM sales WHERE store_id = ? AND idempotency_key = ?", (store_id, key)
                ).fetchone()
                if existing is not None:
                    status = "duplicate" if existing["content_sha256"] == digest else "conflict"
                    db.execute(
                        f"UPDATE stores SET {status}s = {status}s + 1 WHERE store_id = ?",  # noqa: S608 - fixed names
                        (store_id,),
                    )
                    results.append({"idempotency_key": key, "status": status})
                    continue
                db.execute(
                    "INSERT INTO sales (store_id, idempotency_key, content_sha256, sale_json, received_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (store_id, key, digest, json.dumps(sale, sort_keys=True), now),
                )
                for sku, qty in _sale_lines(sale):
                    updated = db.execute(
                        "UPDATE stock SET on_hand = on_hand - ?, updated_at = ? WHERE store_id = ? AND sku = ?",
                        (qty, now, store_id, sku),
                    )
                    if updated.rowcount:
                        self._record_change(db, store_id, sku, key)
                results.append({"idempotency_key": key, "status": "applied"})
            self._prune_changes(db, store_id)
        return results

    def sales_after(self, store_id: str, after_seq: int, limit: int) -> dict[str, Any]:
        store = self._store(store_id)
        limit = _check_limit(limit)
        rows = self.db.execute(
            "SELECT * FROM sales WHERE store_id = ? AND seq > ? ORDER BY seq LIMIT ?", (store_id, after_seq, limit)
        ).fetchall()
        return {
            "sales": [
                {
                    "seq": row["seq"],
                    "idempotency_key": row["idempotency_key"],
                    "sale": json.loads(row["sale_json"]),
                    "received_at": row["received_at"],
                }
                for row in rows
            ],
            "last_seq": rows[-1]["seq"] if rows else after_seq,
            "duplicates": store["duplicates"],
            "conflicts": store["conflicts"],
        }


def _check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise RequestError(f"limit must be between 1 and {MAX_PAGE}, got {limit}")
    return limit


def _parse_stock_change(index: int, item: Any) -> tuple[str, int | None, int, tuple[str, str] | None]:
    if not isinstance(item, dict) or not isinstance(item.get("sku"), str):
        raise RequestError(f"items[{index}] needs a string 'sku'")
    on_hand, delta = item.get("on_hand"), item.get("delta", 0)
    if on_hand is not None and not isinstance(on_hand, int):
        raise RequestError(f"items[{index}].on_hand must be an integer")
    if not isinstance(delta, int):
        raise RequestError(f"items[{index}].delta must be an integer")
    location = item.get("location")
    parsed_location = None
    if location is not None:
        if not isinstance(location, dict) or not all(isinstance(location.get(k), str) for k in ("aisle", "bay")):
            raise RequestError(f"items[{index}].location needs string 'aisle' and 'bay'")
        parsed_location = (location["aisle"], location["bay"])
    return item["sku"], on_hand, delta, parsed_location


def _parse_sales(sales: Any) -> list[tuple[str, dict[str, Any]]]:
    if not isinstance(sales, list) or not sales:
        raise RequestError("'sales' must be a non-empty list")
    if len(sales) > MAX_SALES_PER_BATCH:
        raise RequestError(f"a batch contains at most {MAX_SALES_PER_BATCH} sales, got {len(sales)}")
    entries = []
    for index, entry in enumerate(sales):
        if not isinstance(entry, dict):
            raise RequestError(f"sales[{index}] must be an object")
        key, sale = entry.get("idempotency_key"), entry.get("sale")
        if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_LENGTH:
            raise RequestError(f"sales[{index}].idempotency_key must be a string of 1 to {MAX_KEY_LENGTH} characters")
        if not isinstance(sale, dict):
            raise RequestError(f"sales[{index}].sale must be an object")
        lines = sale.get("lines", [])
        if not isinstance(lines, list):
            raise RequestError(f"sales[{index}].sale.lines must be a list")
        for line_no, line in enumerate(lines):
            if not (
                isinstance(line, dict)
                and isinstance(line.get("sku"), str)
                and isinstance(line.get("qty"), int)
                and not isinstance(line.get("qty"), bool)
            ):
                raise RequestError(f"sales[{index}].sale.lines[{line_no}] needs a string 'sku' and an integer 'qty'")
        entries.append((key, sale))
    return entries


def _sale_lines(sale: dict[str, Any]) -> list[tuple[str, int]]:
    return [(line["sku"], line["qty"]) for line in sale.get("lines", [])]
