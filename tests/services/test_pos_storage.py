"""The POS storage layer on real SQLite files, and the pure parts: sale validation, backoff, settings."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from retail_edge.common.settings import SettingsError
from retail_edge.pos.auth import LoginGuard
from retail_edge.pos.replicas import ReplicaInvalid, parse_cashiers, parse_catalog
from retail_edge.pos.sales import InvalidSale, parse_sale_request
from retail_edge.pos.settings import load_pos_settings
from retail_edge.pos.storage import (
    CashierRecord,
    CatalogItem,
    IdempotencyConflict,
    PosStore,
    RecordedSale,
    SaleSubmission,
    StorageError,
)
from retail_edge.pos.sync import Backoff

HASH = "$argon2id$v=19$m=8192,t=1,p=1$c2FsdHNhbHRzYWx0$4VQ7mWf0Hq0RrY2cTqzHbAqtZ3lOqJkz2nX0eR0d0mY"


def catalog_items(count: int = 5) -> list[CatalogItem]:
    return [
        CatalogItem(f"SKU-{i:05d}", f"Item {i}", 100 * i, {"sku": f"SKU-{i:05d}", "base_price_cents": 100 * i})
        for i in range(1, count + 1)
    ]


def request(sku: str = "SKU-00001", qty: int = 1):
    return parse_sale_request({"register_id": "r1", "lines": [{"sku": sku, "qty": qty}]})


@pytest.fixture
def store(tmp_path: Path):
    store = PosStore(tmp_path / "pos.sqlite3", "store-9")
    store.replace_catalog(catalog_items(), '"catalog-1"')
    yield store
    store.close()


def test_database_is_wal_with_full_sync(store: PosStore):
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # 2 is FULL


def test_sale_and_outbox_row_together(store: PosStore):
    recorded = store.record_sale("k1", request(qty=3), "c001")
    assert not recorded.replayed
    rows = store._db.execute("SELECT s.sale_id, o.state FROM sales s JOIN outbox o ON o.sale_id = s.sale_id").fetchall()
    assert rows == [(recorded.sale_id, "pending")]
    assert store.get_sale(recorded.sale_id)["total_cents"] == 300


def test_failed_sale_leaves_no_rows(store: PosStore):
    with pytest.raises(InvalidSale):
        store.record_sale("k1", request(sku="SKU-77777"), "c001")
    assert store._db.execute("SELECT count(*) FROM sales").fetchone()[0] == 0
    assert store._db.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0


def test_replay_and_conflict(store: PosStore):
    first = store.record_sale("k1", request(), "c001")
    again = store.record_sale("k1", request(), "c001")
    assert again.replayed
    assert again.document_json == first.document_json
    with pytest.raises(IdempotencyConflict) as conflict:
        store.record_sale("k1", request(qty=2), "c001")
    assert conflict.value.sale_id == first.sale_id
    assert store.outbox_stats().pending == 1


def test_group_commit_isolates_rejections(store: PosStore):
    results = store.record_sales(
        [
            SaleSubmission("k1", request(), "c001"),
            SaleSubmission("k2", request(sku="SKU-77777"), "c001"),
            SaleSubmission("k1", request(qty=2), "c001"),
            SaleSubmission("k1", request(), "c001"),
            SaleSubmission("k3", request(), "c002"),
        ]
    )
    assert isinstance(results[0], RecordedSale)
    assert not results[0].replayed
    assert isinstance(results[1], InvalidSale)
    assert isinstance(results[2], IdempotencyConflict)
    assert isinstance(results[3], RecordedSale)
    assert results[3].replayed
    assert results[3].sale_id == results[0].sale_id
    assert isinstance(results[4], RecordedSale)
    assert store.outbox_stats().pending == 2


def test_replay_survives_catalog_change(store: PosStore):
    first = store.record_sale("k1", request(sku="SKU-00005"), "c001")
    store.replace_catalog(catalog_items(2), '"catalog-2"')
    again = store.record_sale("k1", request(sku="SKU-00005"), "c001")
    assert again.replayed
    assert again.document_json == first.document_json


def test_outbox_in_commit_order(store: PosStore):
    sale_ids = [store.record_sale(f"k{i}", request(), "c001").sale_id for i in range(10)]
    batch = store.pending_batch(4)
    assert [entry.sale_id for entry in batch] == sale_ids[:4]
    store.settle_batch([(entry.seq, "applied") for entry in batch[:3]], [(batch[3].seq, "conflict", "differs")])
    assert [entry.sale_id for entry in store.pending_batch(100)] == sale_ids[4:]
    stats = store.outbox_stats()
    assert (stats.pending, stats.rejected) == (6, 1)
    assert store.get_sale(sale_ids[0])["sync"]["state"] == "synced"
    assert store.get_sale(sale_ids[3])["sync"]["state"] == "rejected"


def test_sync_failures_counted(store: PosStore):
    store.record_sale("k1", request(), "c001")
    entry = store.pending_batch(1)[0]
    store.record_sync_failure("push", "unreachable", "connection refused", [entry.seq])
    store.record_sync_failure("push", "unreachable", "connection refused", [entry.seq])
    state = store.sync_state()
    assert state["errors_total.push.unreachable"] == "2"
    assert state["consecutive_failures"] == "2"
    assert store.get_sale(entry.sale_id)["sync"]["attempts"] == 2
    store.settle_batch([(entry.seq, "applied")], [])
    assert store.sync_state()["consecutive_failures"] == "0"


def test_prune_keeps_unsynced(store: PosStore):
    old = store.record_sale("k1", request(), "c001", now=1000.0)
    pending = store.record_sale("k2", request(), "c001", now=1000.0)
    store.settle_batch([(store.pending_batch(1)[0].seq, "applied")], [], now=2000.0)
    assert store.prune_synced(older_than=3000.0) == 1
    assert store.get_sale(old.sale_id) is None
    assert store.get_sale(pending.sale_id) is not None
    assert store.outbox_stats().pending == 1


def test_new_cursor_starts_at_unsynced_sales(store: PosStore):
    for number in range(4):
        store.record_sale(f"k{number}", request(), "c001")
    first, second = store.pending_batch(2)
    store.settle_batch([(first.seq, "applied"), (second.seq, "applied")], [])
    assert store.start_cursor("inventory") == second.seq
    assert [entry.seq for entry in store.entries_after(second.seq, 10)] == [second.seq + 1, second.seq + 2]
    assert store.cursor_lags() == {"inventory": 2}
    store.advance_cursor("inventory", second.seq + 2)
    store.advance_cursor("inventory", second.seq)  # a late, smaller position never moves the cursor back
    assert store.delivery_cursor("inventory") == second.seq + 2
    assert store.start_cursor("inventory") == second.seq + 2


def test_prune_keeps_sales_not_forwarded(store: PosStore):
    store.record_sale("k1", request(), "c001", now=1000.0)
    store.start_cursor("inventory")
    store.settle_batch([(store.pending_batch(1)[0].seq, "applied")], [], now=2000.0)
    assert store.prune_synced(older_than=3000.0) == 0
    store.advance_cursor("inventory", 1)
    assert store.prune_synced(older_than=3000.0) == 1


def test_revocation_ends_sessions(store: PosStore):
    cashiers = [CashierRecord("c001", "A", HASH, ("cashier",)), CashierRecord("c002", "B", HASH, ("cashier",))]
    store.replace_cashiers(cashiers, [], '"v1"')
    store.create_session("t1", "c001", "r1", expires_at=10**10)
    store.create_session("t2", "c002", "r1", expires_at=10**10)
    ended = store.replace_cashiers(cashiers[:1], ["c002"], '"v2"')
    assert ended == {"c002"}
    assert store.session_cashier("t1") == "c001"
    assert store.session_cashier("t2") is None
    assert store.get_cashier("c002") is None


def test_password_change_ends_sessions(store: PosStore):
    store.replace_cashiers([CashierRecord("c001", "A", HASH, ())], [], '"v1"')
    store.create_session("t1", "c001", None, expires_at=10**10)
    changed = HASH.replace("4VQ7", "5VQ7")
    assert store.replace_cashiers([CashierRecord("c001", "A", changed, ())], [], '"v2"') == {"c001"}
    assert store.session_cashier("t1") is None


def test_expired_session_rejected(store: PosStore):
    store.replace_cashiers([CashierRecord("c001", "A", HASH, ())], [], '"v1"')
    store.create_session("t1", "c001", None, expires_at=2000.0, now=1000.0)
    assert store.session_cashier("t1", now=1999.0) == "c001"
    assert store.session_cashier("t1", now=2000.0) is None


def test_newer_schema_refused(tmp_path: Path):
    path = tmp_path / "pos.sqlite3"
    PosStore(path, "s").close()
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA user_version = 99")
    connection.commit()
    connection.close()
    with pytest.raises(StorageError, match="newer than this release"):
        PosStore(path, "s")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "body"),
        ({"register_id": "r 1", "lines": [{"sku": "A", "qty": 1}]}, "register_id"),
        ({"register_id": "r1", "lines": "A"}, "lines"),
        ({"register_id": "r1", "lines": [{"sku": "A", "qty": 1.5}]}, "lines[0].qty"),
        ({"register_id": "r1", "lines": [{"sku": "A", "qty": 10_001}]}, "lines[0].qty"),
        ({"register_id": "r1", "lines": [{"sku": "A", "qty": 1, "unit_price_cents": -1}]}, "lines[0].unit_price_cents"),
        ({"register_id": "r1", "lines": [{"sku": "", "qty": 1}]}, "lines[0].sku"),
        ({"register_id": "r1", "lines": [{"sku": "A", "qty": 1}], "payments": {}}, "payments"),
        ({"register_id": "r1", "lines": [{"sku": "A", "qty": 1}], "total": 1}, "body"),
    ],
)
def test_sale_validation_names_field(body, field):
    with pytest.raises(InvalidSale) as error:
        parse_sale_request(body)
    assert error.value.field == field


def test_backoff_grows_to_cap_with_jitter():
    backoff = Backoff(initial=0.5, maximum=8.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _failure in range(12)]
    ceilings = [min(8.0, 0.5 * 2**n) for n in range(12)]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert 0.5 <= delay <= ceiling
    assert len({round(delay, 6) for delay in delays[5:]}) > 1, "delays at the cap should still be jittered"
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_backoff_honours_retry_after_within_cap():
    backoff = Backoff(initial=0.1, maximum=5.0, rng=random.Random(1))
    assert backoff.next_delay(retry_after=3.0) >= 3.0
    assert backoff.next_delay(retry_after=60.0) <= 5.0


def test_login_guard_locks_after_failures():
    now = [100.0]
    guard = LoginGuard(max_failures=2, lockout_seconds=30, clock=lambda: now[0])
    guard.record_failure("c001")
    assert guard.retry_after("c001") == 0
    guard.record_failure("c001")
    assert guard.retry_after("c001") == 30
    now[0] += 31
    assert guard.retry_after("c001") == 0


def test_replica_documents_validated():
    assert len(parse_catalog({"items": [{"sku": "A", "name": "a", "base_price_cents": 1}]})) == 1
    with pytest.raises(ReplicaInvalid, match="base_price_cents"):
        parse_catalog({"items": [{"sku": "A", "name": "a", "base_price_cents": "1.00"}]})
    with pytest.raises(ReplicaInvalid, match="twice"):
        parse_catalog({"items": [{"sku": "A", "name": "a", "base_price_cents": 1}] * 2})
    cashiers, revoked = parse_cashiers({"cashiers": [{"cashier_id": "c1", "password_hash": HASH}], "revoked": ["c2"]})
    assert [c.cashier_id for c in cashiers] == ["c1"]
    assert revoked == ["c2"]
    with pytest.raises(ReplicaInvalid, match="argon2"):
        parse_cashiers({"cashiers": [{"cashier_id": "c1", "password_hash": "plain"}]})


def test_settings_yaml_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    config = tmp_path / "pos.yml"
    config.write_text(
        "store_id: store-7\ndb_path: /var/lib/pos.db\nhq_url: http://hq.example:8080\nlisten_port: 9000\n"
    )
    monkeypatch.setenv("RETAIL_EDGE_POS_LISTEN_PORT", "9100")
    settings = load_pos_settings(config, {"log_level": "DEBUG"})
    assert settings.store_id == "store-7"
    assert settings.db_path == Path("/var/lib/pos.db")
    assert settings.listen_port == 9100
    assert settings.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("store_id: 'bad id'\n", "store_id"),
        ("hq_url: ftp://hq\n", "hq_url"),
        ("sync_batch_size: 5000\n", "sync_batch_size"),
        ("sync_backoff_max_seconds: 0.01\n", "sync_backoff_max_seconds"),
        ("listen_port: eighty\n", "listen_port"),
        ("colour: red\n", "unknown settings"),
    ],
)
def test_invalid_settings_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: str, message: str):
    for name in ("STORE_ID", "DB_PATH", "HQ_URL", "LISTEN_PORT", "CONFIG"):
        monkeypatch.delenv(f"RETAIL_EDGE_POS_{name}", raising=False)
    base = {"store_id": "store-7", "db_path": "/tmp/x.db", "hq_url": "http://hq"}
    config = tmp_path / "pos.yml"
    override_keys = {line.split(":")[0] for line in extra.splitlines()}
    text = "".join(f"{key}: {value}\n" for key, value in base.items() if key not in override_keys) + extra
    config.write_text(text)
    with pytest.raises(SettingsError, match=message):
        load_pos_settings(config)


def test_missing_settings_named(monkeypatch: pytest.MonkeyPatch):
    for name in ("STORE_ID", "DB_PATH", "HQ_URL", "CONFIG"):
        monkeypatch.delenv(f"RETAIL_EDGE_POS_{name}", raising=False)
    with pytest.raises(SettingsError, match="RETAIL_EDGE_POS_STORE_ID"):
        load_pos_settings(None)
