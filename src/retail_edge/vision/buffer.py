"""Bounded store of events that the MQTT broker has not acknowledged yet.

An event enters the buffer before it is handed to the MQTT client and leaves it on the broker's
PUBACK. The in-memory buffer survives broker outages. The SQLite buffer also survives a restart
of the service, at the price of one fsync-free WAL write per event.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from retail_edge.common.sqlite import connect_wal


@dataclass(frozen=True)
class BufferedEvent:
    """An encoded event with its position in the buffer."""

    seq: int
    topic: str
    payload: bytes


class EventBuffer(Protocol):
    """Ordered, bounded buffer; when full, `append` drops the oldest event."""

    dropped: int

    def append(self, topic: str, payload: bytes) -> int:
        """Store an event and return its sequence number (increasing)."""

    def after(self, seq: int, limit: int) -> list[BufferedEvent]:
        """Return up to limit events with a sequence number above seq, oldest first."""

    def remove(self, seq: int) -> None:
        """Forget an acknowledged event; unknown numbers are ignored."""

    def __len__(self) -> int:
        """Return the number of events not acknowledged yet."""

    def close(self) -> None:
        """Release the storage; the buffer is unusable afterwards."""


class MemoryBuffer:
    """Events in a dict ordered by sequence number; lost when the process ends."""

    def __init__(self, max_events: int) -> None:
        self._max_events = max_events
        self._events: OrderedDict[int, BufferedEvent] = OrderedDict()
        self._next_seq = 1
        self._lock = threading.Lock()
        self.dropped = 0

    def append(self, topic: str, payload: bytes) -> int:
        with self._lock:
            seq = self._next_seq
            self._next_seq += 1
            self._events[seq] = BufferedEvent(seq, topic, payload)
            while len(self._events) > self._max_events:
                self._events.popitem(last=False)
                self.dropped += 1
            return seq

    def after(self, seq: int, limit: int) -> list[BufferedEvent]:
        with self._lock:
            selected = []
            for event in self._events.values():
                if event.seq > seq:
                    selected.append(event)
                    if len(selected) >= limit:
                        break
            return selected

    def remove(self, seq: int) -> None:
        with self._lock:
            self._events.pop(seq, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._events)

    def close(self) -> None:
        """Nothing to release; present for the EventBuffer interface."""


class SqliteBuffer:
    """Events in an SQLite file in WAL mode, kept across restarts until the broker acknowledges them.

    synchronous=NORMAL in WAL mode survives a crash of the process but may lose the last events on
    a power cut; events are alerts, not sales, so they do not pay for an fsync each.
    """

    def __init__(self, path: str | Path, max_events: int) -> None:
        self._max_events = max_events
        self._lock = threading.Lock()
        self._db = connect_wal(Path(path), synchronous="NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, "
            "payload BLOB NOT NULL)"
        )
        self.dropped = 0

    def append(self, topic: str, payload: bytes) -> int:
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            cursor = self._db.execute("INSERT INTO events (topic, payload) VALUES (?, ?)", (topic, payload))
            seq = int(cursor.lastrowid or 0)
            (count,) = self._db.execute("SELECT COUNT(*) FROM events").fetchone()
            excess = count - self._max_events
            if excess > 0:
                self._db.execute(
                    "DELETE FROM events WHERE seq IN (SELECT seq FROM events ORDER BY seq LIMIT ?)", (excess,)
                )
                self.dropped += excess
            return seq

    def after(self, seq: int, limit: int) -> list[BufferedEvent]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, topic, payload FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
            ).fetchall()
        return [BufferedEvent(int(row[0]), str(row[1]), bytes(row[2])) for row in rows]

    def remove(self, seq: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM events WHERE seq = ?", (seq,))

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT COUNT(*) FROM events").fetchone()
        return int(count)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def open_buffer(path: str | None, max_events: int) -> EventBuffer:
    """Return an SQLite buffer at path, or an in-memory buffer when path is None."""
    if path:
        return SqliteBuffer(path, max_events)
    return MemoryBuffer(max_events)
