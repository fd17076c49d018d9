"""Opening the services' SQLite databases in WAL mode, safely when several processes start at once."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

# Switching to WAL takes an exclusive lock. While other processes open and write the same file, SQLite
# can return "database is locked" at once, without waiting out the busy timeout (reproduced by the tests).
_LOCKED_MESSAGES = ("database is locked", "database is busy")


class WalError(sqlite3.OperationalError):
    """The database could not be put in WAL mode."""


def connect_wal(path: Path, *, timeout_s: float = 10.0, synchronous: str = "NORMAL") -> sqlite3.Connection:
    """Open ``path`` in autocommit mode with WAL journaling and the given ``synchronous`` level.

    Retries the switch to WAL while another process holds the lock, for at most ``timeout_s``.
    Raises WalError when the file system cannot do WAL (network file systems) or the lock never frees.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=timeout_s)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            mode = str(db.execute("PRAGMA journal_mode=WAL").fetchone()[0])
            break
        except sqlite3.OperationalError as exc:
            if not str(exc).startswith(_LOCKED_MESSAGES):
                db.close()
                raise
            if time.monotonic() > deadline:
                db.close()
                message = f"{path}: timed out after {timeout_s:g} s waiting for another process's lock: {exc}"
                raise WalError(message) from exc
            time.sleep(0.02)
    if mode.lower() != "wal":
        db.close()
        raise WalError(f"{path}: SQLite could not switch to WAL mode (journal_mode is {mode}); use a local file system")
    db.execute(f"PRAGMA synchronous={synchronous}")
    return db
