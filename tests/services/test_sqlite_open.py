"""Several processes opening one new database at once, the way the inventory API and its sync worker start."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from retail_edge.common.sqlite import WalError, connect_wal
from retail_edge.inventory.store import InventoryStore

OPENERS = 12


def _open_store(path: str, start: multiprocessing.synchronize.Barrier, errors: multiprocessing.Queue) -> None:
    try:
        start.wait()
        store = InventoryStore(Path(path))
        store.db.execute("CREATE TABLE IF NOT EXISTS opener_writes (n INTEGER)")
        for n in range(20):
            with store.transaction() as db:
                db.execute("INSERT INTO opener_writes VALUES (?)", (n,))
        store.close()
        InventoryStore(Path(path)).close()  # a restart while the others still write
    except Exception as exc:  # the parent reports whatever went wrong
        errors.put(repr(exc))


@pytest.mark.parametrize("round_", range(10))
def test_concurrent_open_without_lock_errors(tmp_path: Path, round_: int) -> None:
    path = tmp_path / f"inventory-{round_}.db"
    ctx = multiprocessing.get_context("fork")
    start = ctx.Barrier(OPENERS)
    errors = ctx.Queue()
    procs = [ctx.Process(target=_open_store, args=(str(path), start, errors)) for _ in range(OPENERS)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    found = []
    while not errors.empty():
        found.append(errors.get())
    assert not found
    assert [proc.exitcode for proc in procs] == [0] * OPENERS
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT count(*) FROM opener_writes").fetchone()[0] == 20 * OPENERS
    db.close()


def test_held_lock_error_names_file(tmp_path: Path) -> None:
    path = tmp_path / "held.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(WalError, match=r"held\.db: timed out"):
            connect_wal(path, timeout_s=0.3)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
