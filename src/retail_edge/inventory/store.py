"""SQLite (WAL) storage of the inventory service, shared by the API workers and the sync worker.

Stock is stored as HQ reported it. Local sales that HQ has not yet reflected are kept as pending adjustments,
so ``on_hand = HQ on_hand - pending local sales``. Every write is one transaction.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retail_edge.common.sqlite import connect_wal
from retail_edge.inventory.promise import PickingPolicy, PromisePlan, QueuedOrder, plan_promise

SCHEMA = """
CREATE TABLE IF NOT EXISTS stock (
    sku TEXT PRIMARY KEY, hq_on_hand INTEGER NOT NULL, aisle TEXT NOT NULL, bay TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS local_sales (
    sale_key TEXT NOT NULL, sku TEXT NOT NULL, qty INTEGER NOT NULL, sold_at REAL NOT NULL,
    reflected INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (sale_key, sku)
);
CREATE INDEX IF NOT EXISTS local_sales_pending ON local_sales (sku) WHERE reflected = 0;
CREATE INDEX IF NOT EXISTS local_sales_time ON local_sales (sku, sold_at);
CREATE TABLE IF NOT EXISTS reflected_sales (sale_key TEXT PRIMARY KEY, seen_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS reservations (
    reservation_id TEXT PRIMARY KEY, order_id TEXT UNIQUE, created_at REAL NOT NULL, expires_at REAL NOT NULL,
    picker INTEGER NOT NULL, pick_start REAL NOT NULL, ready_at REAL NOT NULL, lines TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS reservations_expiry ON reservations (expires_at);
CREATE TABLE IF NOT EXISTS reservation_lines (
    reservation_id TEXT NOT NULL, sku TEXT NOT NULL, qty INTEGER NOT NULL, expires_at REAL NOT NULL,
    PRIMARY KEY (reservation_id, sku)
);
CREATE INDEX IF NOT EXISTS reservation_lines_sku ON reservation_lines (sku, expires_at);
CREATE TABLE IF NOT EXISTS sync_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

VELOCITY_WINDOW_S = 3600.0
# Reflected local sales are kept this long for the sales-velocity window and duplicate detection.
LOCAL_SALES_RETENTION_S = 2 * 86400.0
REFLECTED_KEYS_RETENTION_S = 7 * 86400.0


@dataclass(frozen=True)
class SkuRecord:
    """Stored state of one SKU; time-dependent figures (reserved, sold last hour) are computed at read time."""

    sku: str
    hq_on_hand: int
    aisle: str
    bay: str
    updated_at: str
    pending_sales: int
    reservations: tuple[tuple[int, float], ...]  # (qty, expires_at)
    recent_sales: tuple[tuple[float, int], ...]  # (sold_at, qty)

    def reserved(self, now: float) -> int:
        return sum(qty for qty, expires_at in self.reservations if expires_at > now)

    def on_hand(self) -> int:
        return self.hq_on_hand - self.pending_sales

    def available(self, now: float) -> int:
        return max(0, self.on_hand() - self.reserved(now))

    def sold_last_hour(self, now: float) -> int:
        return sum(qty for sold_at, qty in self.recent_sales if sold_at > now - VELOCITY_WINDOW_S)


@dataclass(frozen=True)
class SyncStatus:
    cursor: str | None
    last_contact_at: float | None
    last_error: str | None
    consecutive_failures: int
    snapshots: int


def connect(path: Path) -> sqlite3.Connection:
    # NORMAL is durable across process crashes in WAL mode; only a power loss can drop the last commits.
    db = connect_wal(path, timeout_s=10.0, synchronous="NORMAL")
    db.executescript(SCHEMA)
    return db


class InventoryStore:
    """Reads and writes of the inventory database over one connection (one per process and thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = connect(path)
        self._data_version = -1
        self._cache: dict[str, SkuRecord | None] = {}
        self._status: SyncStatus | None = None

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
        # data_version does not change for this connection's own commits, so drop the cache here.
        self._data_version = -1

    # -- reads with a cache that lives until a connection commits ---------------------------------------------

    def _refresh_cache(self) -> None:
        # data_version changes when another connection commits.
        version = self.db.execute("PRAGMA data_version").fetchone()[0]
        if version != self._data_version:
            self._data_version = version
            self._cache.clear()
            self._status = None

    def lookup(self, sku: str, now: float) -> tuple[SkuRecord | None, SyncStatus]:
        """Return the SKU's record and the sync status with a single freshness check (the hot path)."""
        self._refresh_cache()
        status = self._status if self._status is not None else self.sync_status()
        if sku in self._cache:
            return self._cache[sku], status
        record = self._cache[sku] = self._load_record(sku, now)
        return record, status

    def record(self, sku: str, now: float) -> SkuRecord | None:
        self._refresh_cache()
        if sku in self._cache:
            return self._cache[sku]
        record = self._load_record(sku, now)
        self._cache[sku] = record
        return record

    def _load_record(self, sku: str, now: float) -> SkuRecord | None:
        row = self.db.execute("SELECT hq_on_hand, aisle, bay, updated_at FROM stock WHERE sku = ?", (sku,)).fetchone()
        if row is None:
            return None
        pending = self.db.execute(
            "SELECT COALESCE(SUM(qty), 0) FROM local_sales WHERE sku = ? AND reflected = 0", (sku,)
        ).fetchone()[0]
        reservations = self.db.execute(
            "SELECT qty, expires_at FROM reservation_lines WHERE sku = ? AND expires_at > ?", (sku, now)
        ).fetchall()
        recent = self.db.execute(
            "SELECT sold_at, qty FROM local_sales WHERE sku = ? AND sold_at > ?", (sku, now - VELOCITY_WINDOW_S)
        ).fetchall()
        return SkuRecord(sku, row[0], row[1], row[2], row[3], pending, tuple(reservations), tuple(recent))

    def sync_status(self) -> SyncStatus:
        self._refresh_cache()
        if self._status is None:
            state = dict(self.db.execute("SELECT key, value FROM sync_state").fetchall())
            last_contact = state.get("last_contact_at")
            self._status = SyncStatus(
                cursor=state.get("cursor"),
                last_contact_at=float(last_contact) if last_contact else None,
                last_error=state.get("last_error") or None,
                consecutive_failures=int(state.get("consecutive_failures", "0")),
                snapshots=int(state.get("snapshots", "0")),
            )
        return self._status

    def gauges(self, now: float) -> dict[str, float]:
        """Return figures for /metrics: SKU count, active reservations and their units, pending local sales."""
        skus = self.db.execute("SELECT COUNT(*) FROM stock").fetchone()[0]
        reservations, units = self.db.execute(
            "SELECT COUNT(DISTINCT reservation_id), COALESCE(SUM(qty), 0) FROM reservation_lines WHERE expires_at > ?",
            (now,),
        ).fetchone()
        pending = self.db.execute("SELECT COUNT(*) FROM local_sales WHERE reflected = 0").fetchone()[0]
        return {"skus": skus, "reservations": reservations, "reserved_units": units, "pending_local_sales": pending}

    # -- sync worker writes ----------------------------------------------------------------------------------

    def replace_stock(self, items: Sequence[Mapping[str, Any]], cursor: str, applied_sales: Iterable[str], now: float):
        """Replace all stock with a full snapshot and store its cursor, atomically."""
        with self.transaction() as db:
            db.execute("DELETE FROM stock")
            db.executemany(
                "INSERT OR REPLACE INTO stock VALUES (?, ?, ?, ?, ?)",
                [_stock_row(item) for item in items],
            )
            for key in applied_sales:
                db.execute("UPDATE local_sales SET reflected = 1 WHERE sale_key = ?", (key,))
                db.execute("INSERT OR IGNORE INTO reflected_sales VALUES (?, ?)", (key, now))
            snapshots = self._state(db, "snapshots")
            self._set_state(
                db,
                cursor=cursor,
                last_contact_at=repr(now),
                last_error="",
                consecutive_failures="0",
                snapshots=str(int(snapshots or "0") + 1),
            )

    def apply_changes(self, changes: Sequence[Mapping[str, Any]], cursor: str, now: float) -> None:
        """Apply one page of stock changes and store the cursor after it, atomically."""
        with self.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO stock VALUES (?, ?, ?, ?, ?)", [_stock_row(c) for c in changes])
            for change in changes:
                key = change.get("sale_key")
                if key:
                    db.execute(
                        "UPDATE local_sales SET reflected = 1 WHERE sale_key = ? AND sku = ?", (key, change["sku"])
                    )
                    db.execute("INSERT OR IGNORE INTO reflected_sales VALUES (?, ?)", (key, now))
            self._set_state(db, cursor=cursor, last_contact_at=repr(now), last_error="", consecutive_failures="0")

    def record_contact(self, now: float) -> None:
        with self.transaction() as db:
            self._set_state(db, last_contact_at=repr(now), last_error="", consecutive_failures="0")

    def record_failure(self, error: str) -> int:
        with self.transaction() as db:
            failures = int(self._state(db, "consecutive_failures") or "0") + 1
            self._set_state(db, last_error=error[:500], consecutive_failures=str(failures))
        return failures

    def prune(self, now: float) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM local_sales WHERE reflected = 1 AND sold_at < ?", (now - LOCAL_SALES_RETENTION_S,))
            db.execute("DELETE FROM reflected_sales WHERE seen_at < ?", (now - REFLECTED_KEYS_RETENTION_S,))
            expired = [
                row[0] for row in db.execute("SELECT reservation_id FROM reservations WHERE expires_at <= ?", (now,))
            ]
            for reservation_id in expired:
                db.execute("DELETE FROM reservation_lines WHERE reservation_id = ?", (reservation_id,))
                db.execute("DELETE FROM reservations WHERE reservation_id = ?", (reservation_id,))

    @staticmethod
    def _state(db: sqlite3.Connection, key: str) -> str | None:
        row = db.execute("SELECT value FROM sync_state WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    @staticmethod
    def _set_state(db: sqlite3.Connection, **values: str) -> None:
        db.executemany("INSERT OR REPLACE INTO sync_state VALUES (?, ?)", list(values.items()))

    # -- local writes from the API ----------------------------------------------------------------------------

    def record_local_sales(self, sales: Sequence[tuple[str, dict[str, int]]], now: float) -> list[dict[str, str]]:
        """Count local sales at once; a repeated key is a duplicate, a key HQ already applied is not counted."""
        results = []
        with self.transaction() as db:
            for key, lines in sales:
                if db.execute("SELECT 1 FROM local_sales WHERE sale_key = ? LIMIT 1", (key,)).fetchone():
                    results.append({"idempotency_key": key, "status": "duplicate"})
                    continue
                reflected = db.execute("SELECT 1 FROM reflected_sales WHERE sale_key = ?", (key,)).fetchone()
                db.executemany(
                    "INSERT INTO local_sales VALUES (?, ?, ?, ?, ?)",
                    [(key, sku, qty, now, 1 if reflected else 0) for sku, qty in lines.items()],
                )
                results.append({"idempotency_key": key, "status": "already_reflected" if reflected else "applied"})
        return results

    def promise(
        self, order_id: str | None, lines: dict[str, int], policy: PickingPolicy, ttl_s: float, now: float
    ) -> tuple[PromisePlan, dict[str, Any] | None]:
        """Check stock and picking capacity and reserve, in one transaction so two promises never oversell."""
        with self.transaction() as db:
            if order_id is not None:
                existing = db.execute(
                    "SELECT * FROM reservations WHERE order_id = ? AND expires_at > ?", (order_id, now)
                ).fetchone()
                if existing is not None:
                    return PromisePlan(
                        picker=existing[4], pick_start=existing[5], ready_at=existing[6]
                    ), _reservation_dict(existing)
            available: dict[str, int | None] = {}
            for sku in lines:
                record = self._load_record(sku, now)
                available[sku] = None if record is None else record.available(now)
            queue = [
                QueuedOrder(picker=row[0], pick_start=row[1], ready_at=row[2])
                for row in db.execute(
                    "SELECT picker, pick_start, ready_at FROM reservations WHERE expires_at > ? AND ready_at > ?",
                    (now, now),
                )
            ]
            plan = plan_promise(lines, available, queue, policy, now)
            if not plan.met:
                return plan, None
            reservation_id = f"res-{uuid.uuid4().hex[:16]}"
            expires_at = now + ttl_s
            db.execute(
                "INSERT INTO reservations VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    reservation_id,
                    order_id,
                    now,
                    expires_at,
                    plan.picker,
                    plan.pick_start,
                    plan.ready_at,
                    json.dumps(lines),
                ),
            )
            db.executemany(
                "INSERT INTO reservation_lines VALUES (?, ?, ?, ?)",
                [(reservation_id, sku, qty, expires_at) for sku, qty in lines.items()],
            )
            row = db.execute("SELECT * FROM reservations WHERE reservation_id = ?", (reservation_id,)).fetchone()
            return plan, _reservation_dict(row)

    def reservation(self, reservation_id: str, now: float) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT * FROM reservations WHERE reservation_id = ? AND expires_at > ?", (reservation_id, now)
        ).fetchone()
        return None if row is None else _reservation_dict(row)

    def release_reservation(self, reservation_id: str) -> bool:
        with self.transaction() as db:
            db.execute("DELETE FROM reservation_lines WHERE reservation_id = ?", (reservation_id,))
            return db.execute("DELETE FROM reservations WHERE reservation_id = ?", (reservation_id,)).rowcount > 0

    def pickers_on_shift(self, default: int) -> int:
        row = self.db.execute("SELECT value FROM sync_state WHERE key = 'pickers_on_shift'").fetchone()
        return default if row is None else int(row[0])

    def set_pickers_on_shift(self, count: int) -> None:
        with self.transaction() as db:
            self._set_state(db, pickers_on_shift=str(count))


def _stock_row(item: Mapping[str, Any]) -> tuple[str, int, str, str, str]:
    location = item.get("location") or {}
    return (
        item["sku"],
        int(item["on_hand"]),
        str(location.get("aisle", "")),
        str(location.get("bay", "")),
        str(item.get("updated_at", "")),
    )


def _reservation_dict(row: Sequence[Any]) -> dict[str, Any]:
    return {
        "reservation_id": row[0],
        "order_id": row[1],
        "created_at": row[2],
        "expires_at": row[3],
        "picker": row[4],
        "pick_start": row[5],
        "ready_at": row[6],
        "lines": json.loads(row[7]),
    }


def wall_clock() -> float:
    return time.time()
