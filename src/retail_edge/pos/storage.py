"""SQLite storage of the POS cache: sales, their outbox, and the replicas of HQ's catalog and cashiers.

Durability contract: the database runs in WAL mode with ``synchronous=FULL``, so a COMMIT returns only after the
WAL is fsynced. ``record_sale`` writes the sale and its outbox row in one ``BEGIN IMMEDIATE`` transaction and
returns only after that COMMIT, so whatever the HTTP layer acknowledges survives a crash of the process or the
host. The sync agent reads the outbox in sequence order and marks rows synced only after HQ acknowledged them.

One PosStore owns one connection and is not thread-safe; the POS server and the sync agent each drive their
store from a single thread. Several processes may open the same file: SQLite serializes their writers and
``busy_timeout`` makes a writer wait for the other instead of failing at once.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from retail_edge.common.sqlite import WalError, connect_wal
from retail_edge.pos.sales import (
    InvalidSale,
    SaleRequest,
    canonical_json,
    compact_json,
    price_sale,
    request_fingerprint,
)

SCHEMA_VERSION = 1

# Keys of the sync_state table, written by the sync agent and exported as metrics by both processes.
ERRORS_PREFIX = "errors_total."
LAST_SUCCESS_KEY = "last_success_at"
CONSECUTIVE_FAILURES_KEY = "consecutive_failures"

SCHEMA = """
CREATE TABLE sales (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    sale_id TEXT NOT NULL UNIQUE,
    idempotency_key TEXT NOT NULL UNIQUE,
    request_sha256 TEXT NOT NULL,
    cashier_id TEXT NOT NULL,
    register_id TEXT NOT NULL,
    total_cents INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    document TEXT NOT NULL
);
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    sale_id TEXT NOT NULL UNIQUE REFERENCES sales (sale_id) ON DELETE CASCADE,
    enqueued_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'synced', 'rejected')),
    attempts INTEGER NOT NULL DEFAULT 0,
    synced_at REAL,
    hq_status TEXT,
    last_error TEXT
);
CREATE INDEX outbox_pending ON outbox (seq) WHERE state = 'pending';
CREATE INDEX outbox_synced_at ON outbox (synced_at) WHERE state = 'synced';
CREATE TABLE catalog (
    sku TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    base_price_cents INTEGER NOT NULL,
    document TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE cashiers (
    cashier_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    roles TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE revoked_cashiers (
    cashier_id TEXT PRIMARY KEY
) WITHOUT ROWID;
CREATE TABLE sessions (
    token_sha256 TEXT PRIMARY KEY,
    cashier_id TEXT NOT NULL,
    register_id TEXT,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_cashier ON sessions (cashier_id);
CREATE TABLE replicas (
    name TEXT PRIMARY KEY,
    version TEXT,
    synced_at REAL NOT NULL,
    item_count INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE delivery_cursors (
    target TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE sync_state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
"""


class IdempotencyConflict(Exception):
    """The idempotency key was already used for a sale with different content."""

    def __init__(self, idempotency_key: str, sale_id: str) -> None:
        super().__init__(f"idempotency key {idempotency_key!r} was already used for sale {sale_id} with other content")
        self.idempotency_key = idempotency_key
        self.sale_id = sale_id


class StorageError(RuntimeError):
    """The database file cannot be used as the POS store (wrong journal mode, newer schema, ...)."""


@dataclass(frozen=True)
class RecordedSale:
    """The acknowledged sale document; ``replayed`` is true when an earlier request with the same key created it."""

    sale_id: str
    document_json: str
    replayed: bool


class SaleSubmission(NamedTuple):
    """A validated sale request with its idempotency key and the cashier of the session that sent it."""

    idempotency_key: str
    request: SaleRequest
    cashier_id: str


@dataclass(frozen=True)
class OutboxEntry:
    seq: int
    sale_id: str
    document_json: str


@dataclass(frozen=True)
class OutboxStats:
    pending: int
    rejected: int
    oldest_pending_age_seconds: float


@dataclass(frozen=True)
class CatalogItem:
    sku: str
    name: str
    base_price_cents: int
    document: dict[str, Any]


@dataclass(frozen=True)
class CashierRecord:
    cashier_id: str
    name: str
    password_hash: str
    roles: tuple[str, ...]


def utc_timestamp(now: float) -> str:
    """Format a Unix time as an RFC 3339 UTC timestamp with milliseconds (``2026-05-01T09:30:00.125Z``)."""
    milliseconds = int(now * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{milliseconds:03d}Z"


class PosStore:
    """The POS cache database; see the module documentation for the durability contract."""

    def __init__(self, path: Path, store_id: str, *, busy_timeout_ms: int = 5000) -> None:
        self.path = path
        self.store_id = store_id
        # Autocommit mode leaves transaction control to the explicit BEGIN/COMMIT below.
        try:
            self._db = connect_wal(path, timeout_s=busy_timeout_ms / 1000, synchronous="FULL")
        except WalError as exc:
            raise StorageError(str(exc)) from exc
        self._db.execute("PRAGMA foreign_keys = ON")
        self._migrate()
        self._prices: dict[str, tuple[str, int]] | None = None
        self._prices_replica: tuple[Any, ...] | None = None
        self._seen_data_version: int | None = None

    def close(self) -> None:
        self._db.close()

    def _migrate(self) -> None:
        with self._transaction():
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StorageError(
                    f"{self.path}: schema version {version} is newer than this release supports ({SCHEMA_VERSION}); "
                    "upgrade retail-edge-services"
                )
            if version == 0:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock up front, so a transaction never fails half-way on a lock upgrade.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    # Sales -------------------------------------------------------------------------------------------------

    def record_sale(
        self, idempotency_key: str, request: SaleRequest, cashier_id: str, now: float | None = None
    ) -> RecordedSale:
        """Store a sale and its outbox row in one transaction and return the acknowledged document.

        A retry with the same key and the same content returns the first document with ``replayed`` set; the same
        key with other content raises IdempotencyConflict. Unknown SKUs and payment mismatches raise InvalidSale.
        """
        result = self.record_sales([SaleSubmission(idempotency_key, request, cashier_id)], now)[0]
        if isinstance(result, Exception):
            raise result
        return result

    def record_sales(
        self, submissions: Sequence[SaleSubmission], now: float | None = None
    ) -> list[RecordedSale | InvalidSale | IdempotencyConflict]:
        """Store several sales, each with its outbox row, in one transaction: one fsync for the whole group.

        Each submission gets its own result, as ``record_sale`` would return or raise it. A rejected submission
        writes nothing and does not affect the others. Any other error rolls the whole group back and is raised.
        """
        now = time.time() if now is None else now
        created_at = utc_timestamp(now)
        results: list[RecordedSale | InvalidSale | IdempotencyConflict] = []
        with self._transaction():
            for submission in submissions:
                try:
                    results.append(self._insert_sale(submission, now, created_at))
                except (InvalidSale, IdempotencyConflict) as exc:
                    results.append(exc)
        return results

    def _insert_sale(self, submission: SaleSubmission, now: float, created_at: str) -> RecordedSale:
        key, request, cashier_id = submission
        fingerprint = request_fingerprint(request, cashier_id)
        try:
            lines, total = price_sale(request, self._catalog_prices(line.sku for line in request.lines))
        except InvalidSale:
            # A retry must get its first response even if the catalog changed since the sale was recorded.
            if self._find_by_key(key) is None:
                raise
            return self._replay(key, fingerprint)

        sale_id = str(uuid.uuid4())
        document_json = compact_json(
            {
                "sale_id": sale_id,
                "store_id": self.store_id,
                "register_id": request.register_id,
                "cashier_id": cashier_id,
                "created_at": created_at,
                "lines": lines,
                "total_cents": total,
                "payments": [{"method": p.method, "amount_cents": p.amount_cents} for p in request.payments],
            }
        )
        # The UNIQUE index on idempotency_key decides between a new sale and a retry, which saves a lookup on the
        # common path of a fresh key.
        inserted = self._db.execute(
            "INSERT INTO sales (sale_id, idempotency_key, request_sha256, cashier_id, register_id, total_cents,"
            " created_at, document) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (idempotency_key) DO NOTHING",
            (sale_id, key, fingerprint, cashier_id, request.register_id, total, created_at, document_json),
        ).rowcount
        if not inserted:
            return self._replay(key, fingerprint)
        self._db.execute("INSERT INTO outbox (sale_id, enqueued_at) VALUES (?, ?)", (sale_id, now))
        return RecordedSale(sale_id=sale_id, document_json=document_json, replayed=False)

    def _find_by_key(self, idempotency_key: str) -> tuple[str, str, str] | None:
        return self._db.execute(
            "SELECT sale_id, request_sha256, document FROM sales WHERE idempotency_key = ?", (idempotency_key,)
        ).fetchone()

    def _replay(self, idempotency_key: str, fingerprint: str) -> RecordedSale:
        found = self._find_by_key(idempotency_key)
        if found is None:
            raise StorageError(f"sale with idempotency key {idempotency_key!r} vanished during its transaction")
        sale_id, stored_fingerprint, document_json = found
        if stored_fingerprint != fingerprint:
            raise IdempotencyConflict(idempotency_key, sale_id)
        return RecordedSale(sale_id=sale_id, document_json=document_json, replayed=True)

    def get_sale(self, sale_id: str) -> dict[str, Any] | None:
        """Return a stored sale document with its sync state, or None if the sale id is unknown."""
        row = self._db.execute(
            "SELECT s.document, o.state, o.synced_at, o.hq_status, o.last_error, o.attempts"
            " FROM sales s LEFT JOIN outbox o ON o.sale_id = s.sale_id WHERE s.sale_id = ?",
            (sale_id,),
        ).fetchone()
        if row is None:
            return None
        document_json, state, synced_at, hq_status, last_error, attempts = row
        document = json.loads(document_json)
        document["sync"] = {
            # A sale whose synced outbox row was pruned is reported as synced.
            "state": state or "synced",
            "synced_at": utc_timestamp(synced_at) if synced_at else None,
            "hq_status": hq_status,
            "attempts": attempts or 0,
            "last_error": last_error,
        }
        return document

    def sale_ids_in_order(self) -> list[str]:
        """Return every stored sale id in the order the sales were committed."""
        return [row[0] for row in self._db.execute("SELECT sale_id FROM sales ORDER BY seq")]

    # Catalog replica ---------------------------------------------------------------------------------------

    def _catalog_prices(self, skus: Iterable[str]) -> dict[str, tuple[str, int]]:
        """Return (name, base price in cents) of each known SKU, from an in-memory copy of the catalog replica.

        The copy is reloaded when the replica changed. ``PRAGMA data_version`` changes whenever another connection
        (the sync agent) commits, and only then is the replica's version read to see whether that commit replaced
        the catalog. Inside a write transaction no other connection can commit, so the copy matches the database.
        """
        data_version = self._db.execute("PRAGMA data_version").fetchone()[0]
        if data_version != self._seen_data_version:
            self._seen_data_version = data_version
            replica = self._db.execute("SELECT version, synced_at FROM replicas WHERE name = 'catalog'").fetchone()
            if replica != self._prices_replica:
                self._prices_replica = replica
                self._prices = None
        if self._prices is None:
            rows = self._db.execute("SELECT sku, name, base_price_cents FROM catalog")
            self._prices = {sku: (name, price) for sku, name, price in rows}
        prices = self._prices
        return {sku: prices[sku] for sku in skus if sku in prices}

    def replace_catalog(self, items: Sequence[CatalogItem], version: str | None, now: float | None = None) -> None:
        """Replace the catalog replica with a full copy from HQ in one transaction."""
        now = time.time() if now is None else now
        # This connection's own commits leave data_version alone, so the price copy is dropped here.
        self._prices = None
        with self._transaction() as db:
            db.execute("DELETE FROM catalog")
            db.executemany(
                "INSERT INTO catalog (sku, name, base_price_cents, document) VALUES (?, ?, ?, ?)",
                [(item.sku, item.name, item.base_price_cents, canonical_json(item.document)) for item in items],
            )
            self._set_replica(db, "catalog", version, now, len(items))

    def get_catalog_item(self, sku: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT document FROM catalog WHERE sku = ?", (sku,)).fetchone()
        return None if row is None else json.loads(row[0])

    def list_catalog(self, after: str, limit: int) -> list[dict[str, Any]]:
        """Return up to ``limit`` catalog items with a SKU greater than ``after``, in SKU order."""
        rows = self._db.execute(
            "SELECT document FROM catalog WHERE sku > ? ORDER BY sku LIMIT ?", (after, limit)
        ).fetchall()
        return [json.loads(row[0]) for row in rows]

    def get_prices(self, skus: Sequence[str]) -> dict[str, int]:
        """Return the base price in cents of each known SKU; unknown SKUs are left out."""
        return {sku: price for sku, (_name, price) in self._catalog_prices(skus).items()}

    # Cashier replica and sessions --------------------------------------------------------------------------

    def replace_cashiers(
        self, cashiers: Sequence[CashierRecord], revoked: Iterable[str], version: str | None, now: float | None = None
    ) -> set[str]:
        """Replace the cashier replica and revocation list; return the cashiers whose sessions were ended.

        Sessions end for cashiers that are revoked, removed, or whose password hash changed at HQ.
        """
        now = time.time() if now is None else now
        revoked_ids = set(revoked)
        with self._transaction() as db:
            previous = dict(db.execute("SELECT cashier_id, password_hash FROM cashiers").fetchall())
            current = {cashier.cashier_id: cashier.password_hash for cashier in cashiers}
            ended = {
                cashier_id for cashier_id, password_hash in previous.items() if current.get(cashier_id) != password_hash
            }
            ended |= revoked_ids

            db.execute("DELETE FROM cashiers")
            db.executemany(
                "INSERT INTO cashiers (cashier_id, name, password_hash, roles) VALUES (?, ?, ?, ?)",
                [(c.cashier_id, c.name, c.password_hash, json.dumps(list(c.roles))) for c in cashiers],
            )
            db.execute("DELETE FROM revoked_cashiers")
            db.executemany("INSERT INTO revoked_cashiers (cashier_id) VALUES (?)", [(c,) for c in sorted(revoked_ids)])
            db.executemany("DELETE FROM sessions WHERE cashier_id = ?", [(c,) for c in sorted(ended)])
            self._set_replica(db, "cashiers", version, now, len(cashiers))
        return ended

    def get_cashier(self, cashier_id: str) -> CashierRecord | None:
        """Return a cashier allowed to log in, or None if the id is unknown or revoked."""
        row = self._db.execute(
            "SELECT cashier_id, name, password_hash, roles FROM cashiers WHERE cashier_id = ?"
            " AND cashier_id NOT IN (SELECT cashier_id FROM revoked_cashiers)",
            (cashier_id,),
        ).fetchone()
        if row is None:
            return None
        return CashierRecord(cashier_id=row[0], name=row[1], password_hash=row[2], roles=tuple(json.loads(row[3])))

    def create_session(
        self, token_sha256: str, cashier_id: str, register_id: str | None, expires_at: float, now: float | None = None
    ) -> None:
        now = time.time() if now is None else now
        with self._transaction() as db:
            db.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,))
            db.execute(
                "INSERT INTO sessions (token_sha256, cashier_id, register_id, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (token_sha256, cashier_id, register_id, now, expires_at),
            )

    def session_cashier(self, token_sha256: str, now: float | None = None) -> str | None:
        """Return the cashier of a live session, or None if the token is unknown, expired or its cashier revoked."""
        now = time.time() if now is None else now
        row = self._db.execute(
            "SELECT s.cashier_id FROM sessions s JOIN cashiers c ON c.cashier_id = s.cashier_id"
            " WHERE s.token_sha256 = ? AND s.expires_at > ?"
            " AND s.cashier_id NOT IN (SELECT cashier_id FROM revoked_cashiers)",
            (token_sha256, now),
        ).fetchone()
        return None if row is None else str(row[0])

    def delete_session(self, token_sha256: str) -> bool:
        with self._transaction() as db:
            return db.execute("DELETE FROM sessions WHERE token_sha256 = ?", (token_sha256,)).rowcount > 0

    # Replica bookkeeping -----------------------------------------------------------------------------------

    @staticmethod
    def _set_replica(db: sqlite3.Connection, name: str, version: str | None, now: float, count: int) -> None:
        db.execute(
            "INSERT INTO replicas (name, version, synced_at, item_count) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET version = excluded.version, synced_at = excluded.synced_at,"
            " item_count = excluded.item_count",
            (name, version, now, count),
        )

    def replica_versions(self) -> dict[str, dict[str, Any]]:
        """Return version, sync time and item count of each replica pulled from HQ so far."""
        rows = self._db.execute("SELECT name, version, synced_at, item_count FROM replicas").fetchall()
        return {
            name: {
                "version": version,
                "synced_at": utc_timestamp(synced_at),
                "synced_at_unix": synced_at,
                "items": count,
            }
            for name, version, synced_at, count in rows
        }

    def touch_replica(self, name: str, now: float | None = None) -> None:
        """Record that HQ confirmed a replica is current (HTTP 304) without changing its content."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            db.execute("UPDATE replicas SET synced_at = ? WHERE name = ?", (now, name))

    # Outbox ------------------------------------------------------------------------------------------------

    def pending_batch(self, limit: int) -> list[OutboxEntry]:
        """Return up to ``limit`` unsynced sales in commit order."""
        rows = self._db.execute(
            "SELECT o.seq, o.sale_id, s.document FROM outbox o JOIN sales s ON s.sale_id = o.sale_id"
            " WHERE o.state = 'pending' ORDER BY o.seq LIMIT ?",
            (limit,),
        ).fetchall()
        return [OutboxEntry(seq=seq, sale_id=sale_id, document_json=document) for seq, sale_id, document in rows]

    def settle_batch(
        self,
        acknowledged: Sequence[tuple[int, str]],
        rejected: Sequence[tuple[int, str, str]],
        now: float | None = None,
    ) -> None:
        """Record HQ's response to a batch in one transaction and reset the failure streak.

        ``acknowledged`` contains (seq, HQ status) of sales HQ applied or already had; they leave the queue.
        ``rejected`` contains (seq, HQ status, reason) of sales HQ will never accept; they leave the queue but stay
        in the outbox for an operator.
        """
        now = time.time() if now is None else now
        with self._transaction() as db:
            db.executemany(
                "UPDATE outbox SET state = 'synced', synced_at = ?, hq_status = ?, attempts = attempts + 1,"
                " last_error = NULL WHERE seq = ? AND state = 'pending'",
                [(now, status, seq) for seq, status in acknowledged],
            )
            db.executemany(
                "UPDATE outbox SET state = 'rejected', hq_status = ?, last_error = ?, attempts = attempts + 1"
                " WHERE seq = ? AND state = 'pending'",
                [(status, reason[:1000], seq) for seq, status, reason in rejected],
            )
            self._put_state(db, {LAST_SUCCESS_KEY: repr(now), CONSECUTIVE_FAILURES_KEY: "0"})

    def record_sync_failure(self, operation: str, kind: str, error: str, seqs: Sequence[int] = ()) -> None:
        """Count a failed push or pull, persistently, and note the error on the outbox rows it concerned."""
        with self._transaction() as db:
            state = dict(db.execute("SELECT key, value FROM sync_state").fetchall())
            counter = f"{ERRORS_PREFIX}{operation}.{kind}"
            self._put_state(
                db,
                {
                    counter: str(int(state.get(counter, "0")) + 1),
                    CONSECUTIVE_FAILURES_KEY: str(int(state.get(CONSECUTIVE_FAILURES_KEY, "0")) + 1),
                    "last_error": f"{operation} {kind}: {error}"[:1000],
                    "last_error_at": repr(time.time()),
                },
            )
            db.executemany(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE seq = ? AND state = 'pending'",
                [(error[:1000], seq) for seq in seqs],
            )

    # Delivery cursors ------------------------------------------------------------------------------------

    def start_cursor(self, target: str) -> int:
        """Create the cursor of a delivery target if it is new, and return it.

        A new cursor starts before the oldest sale HQ has not acknowledged: older sales already reached HQ, so
        a target that follows HQ's stock feed (the inventory API) has seen them there.
        """
        with self._transaction() as db:
            db.execute(
                "INSERT INTO delivery_cursors (target, last_seq) SELECT ?, coalesce("
                " (SELECT min(seq) - 1 FROM outbox WHERE state = 'pending'), (SELECT max(seq) FROM outbox), 0)"
                " ON CONFLICT (target) DO NOTHING",
                (target,),
            )
        return self.delivery_cursor(target)

    def delivery_cursor(self, target: str) -> int:
        """Return the outbox seq up to which the target has every sale, or 0 for an unknown target."""
        row = self._db.execute("SELECT last_seq FROM delivery_cursors WHERE target = ?", (target,)).fetchone()
        return 0 if row is None else int(row[0])

    def advance_cursor(self, target: str, seq: int) -> None:
        with self._transaction() as db:
            db.execute("UPDATE delivery_cursors SET last_seq = max(last_seq, ?) WHERE target = ?", (seq, target))

    def entries_after(self, seq: int, limit: int) -> list[OutboxEntry]:
        """Return up to ``limit`` sales after outbox seq ``seq`` in commit order, whatever their state at HQ."""
        rows = self._db.execute(
            "SELECT o.seq, o.sale_id, s.document FROM outbox o JOIN sales s ON s.sale_id = o.sale_id"
            " WHERE o.seq > ? ORDER BY o.seq LIMIT ?",
            (seq, limit),
        ).fetchall()
        return [
            OutboxEntry(seq=row_seq, sale_id=sale_id, document_json=document) for row_seq, sale_id, document in rows
        ]

    def cursor_lags(self) -> dict[str, int]:
        """Return, per delivery target, how many sales it has not received yet."""
        rows = self._db.execute(
            "SELECT c.target, (SELECT count(*) FROM outbox o WHERE o.seq > c.last_seq) FROM delivery_cursors c"
        ).fetchall()
        return dict(rows)

    def outbox_stats(self, now: float | None = None) -> OutboxStats:
        now = time.time() if now is None else now
        pending, oldest = self._db.execute(
            "SELECT count(*), min(enqueued_at) FROM outbox WHERE state = 'pending'"
        ).fetchone()
        rejected = self._db.execute("SELECT count(*) FROM outbox WHERE state = 'rejected'").fetchone()[0]
        age = max(0.0, now - oldest) if oldest is not None else 0.0
        return OutboxStats(pending=pending, rejected=rejected, oldest_pending_age_seconds=age)

    def prune_synced(self, older_than: float) -> int:
        """Delete sales synced before ``older_than`` (Unix time) with their outbox rows; return how many.

        Sales that a delivery target has not received yet are kept. The idempotency keys of pruned sales are
        forgotten, so keep the retention well above the longest time a register may retry a request.
        """
        with self._transaction() as db:
            return db.execute(
                "DELETE FROM sales WHERE sale_id IN (SELECT sale_id FROM outbox WHERE state = 'synced'"
                " AND synced_at < ? AND seq <= (SELECT coalesce(min(last_seq), 9223372036854775807)"
                " FROM delivery_cursors))",
                (older_than,),
            ).rowcount

    # Sync agent status -------------------------------------------------------------------------------------

    @staticmethod
    def _put_state(db: sqlite3.Connection, values: dict[str, str]) -> None:
        db.executemany(
            "INSERT INTO sync_state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            sorted(values.items()),
        )

    def sync_state(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT key, value FROM sync_state").fetchall())

    def check(self) -> None:
        """Run a cheap read that fails if the database file became unusable."""
        self._db.execute("SELECT count(*) FROM replicas").fetchone()
