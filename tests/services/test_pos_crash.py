"""Crashes: the POS server and the sync agent killed with SIGKILL while they work."""

from __future__ import annotations

import http.client
import random
import signal
import threading
import time
from dataclasses import dataclass, field

from tests.fixtures_hq import LabHq
from tests.fixtures_pos import (
    BatchInterceptor,
    PosCache,
    PosClient,
    hq_sales,
    new_key,
    sale_lines,
    sell_concurrently,
)

KILLS = 50
WRITERS = 4


@dataclass
class Ledger:
    """What the registers know: sales acknowledged with 201, and requests whose response a crash cut off."""

    acknowledged: dict[str, str] = field(default_factory=dict)  # idempotency key -> sale id
    # writer -> {idempotency key: lines}; a register retries its own unanswered request, unchanged.
    unanswered: dict[int, dict[str, list[dict]]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, key: str, sale_id: str) -> None:
        with self.lock:
            previous = self.acknowledged.setdefault(key, sale_id)
        if previous != sale_id:
            self.errors.append(f"key {key} was acknowledged as sale {previous} and later as {sale_id}")


def write_until_killed(client: PosClient, ledger: Ledger, writer: int, stop: threading.Event) -> bool:
    """Sell until the connection breaks or ``stop`` is set; return whether a request was cut off by the crash."""
    pending = ledger.unanswered.setdefault(writer, {})
    number = 0
    while not stop.is_set():
        if pending:
            key, lines = next(iter(pending.items()))
        else:
            key, lines = new_key(), sale_lines(writer * 1_000_000 + number)
            pending[key] = lines
            number += 1
        try:
            reply = client.sell(key, lines, register_id=f"r{writer}")
        except (OSError, http.client.HTTPException):
            return True
        if reply.status != 201:
            ledger.errors.append(f"writer {writer}, key {key}: HTTP {reply.status} {reply.body}")
            return False
        del pending[key]
        ledger.record(key, reply.body["sale_id"])
    return False


def _writer_thread(
    client: PosClient, ledger: Ledger, writer: int, stop: threading.Event, interrupted: list[bool]
) -> None:
    interrupted.append(write_until_killed(client, ledger, writer, stop))


def test_pos_sigkill_keeps_acknowledged_sales(lab_hq: LabHq, pos_factory):
    pos: PosCache = pos_factory(lab_hq.url)
    pos.sync_once()
    pos.start_server()
    tokens = [pos.client(f"c00{writer % 6 + 1}").token for writer in range(WRITERS)]
    pos.stop_server()

    rng = random.Random(20260501)
    ledger = Ledger()
    kills_during_writes = 0
    cycles = 0
    while kills_during_writes < KILLS:
        cycles += 1
        assert cycles <= KILLS * 2, "too few kills landed while requests were in flight"
        pos.start_server()
        stop = threading.Event()
        interrupted: list[bool] = []
        # Sessions are stored in the database, so the registers' tokens survive every crash.
        clients = [PosClient(pos.port, token) for token in tokens]
        threads = [
            threading.Thread(target=_writer_thread, args=(client, ledger, writer, stop, interrupted))
            for writer, client in enumerate(clients)
        ]
        for thread in threads:
            thread.start()
        time.sleep(rng.uniform(0.05, 0.3))
        pos.stop_server(signal.SIGKILL)
        stop.set()
        for thread in threads:
            thread.join(30)
        for client in clients:
            client.close()
        if any(interrupted):
            kills_during_writes += 1

        stored = dict(pos.query("SELECT idempotency_key, sale_id FROM sales"))
        lost = {key: sale_id for key, sale_id in ledger.acknowledged.items() if stored.get(key) != sale_id}
        assert lost == {}, f"after kill {cycles}, acknowledged sales are missing: {list(lost)[:5]}"

    assert ledger.errors == []

    # Registers retry what the last crash left unanswered; each key must end as exactly one sale.
    pos.start_server()
    for writer, pending in ledger.unanswered.items():
        client = PosClient(pos.port, tokens[writer])
        for key, lines in pending.items():
            reply = client.sell(key, lines, register_id=f"r{writer}")
            assert reply.status == 201, reply.body
            ledger.record(key, reply.body["sale_id"])
        client.close()
    assert ledger.errors == []
    stored = dict(pos.query("SELECT idempotency_key, sale_id FROM sales"))
    assert stored == ledger.acknowledged
    orphans = pos.query("SELECT count(*) FROM sales s LEFT JOIN outbox o ON o.sale_id = s.sale_id WHERE o.seq IS NULL")
    assert orphans == [(0,)]
    assert pos.query("PRAGMA integrity_check") == [("ok",)]
    client = PosClient(pos.port, tokens[0])
    sample = next(iter(ledger.acknowledged.values()))
    assert client.request("GET", f"/sales/{sample}").status == 200
    client.close()


def _sell(pos: PosCache, count: int) -> list[str]:
    """Sell ``count`` sales from four registers and return their sale ids in commit order."""
    sell_concurrently(pos, count, 4)
    return [row[0] for row in pos.query("SELECT sale_id FROM sales ORDER BY seq")]


def _assert_exactly_once_in_order(lab_hq: LabHq, pos: PosCache, sale_ids: list[str]) -> int:
    sales, duplicates = hq_sales(lab_hq)
    keys = [sale["idempotency_key"] for sale in sales]
    assert len(keys) == len(set(keys)), "HQ applied a sale twice"
    assert keys == [row[0] for row in pos.query("SELECT sale_id FROM sales ORDER BY seq")]
    assert set(keys) == set(sale_ids)
    return duplicates


def test_agent_killed_mid_batch_no_duplicates(lab_hq: LabHq, pos_factory):
    holder: dict[str, PosCache] = {}
    proxy = BatchInterceptor(lab_hq.port, on_cut=lambda: holder["pos"].stop_agent(signal.SIGKILL))
    pos: PosCache = pos_factory(f"http://127.0.0.1:{proxy.port}", sync_batch_size=200)
    holder["pos"] = pos
    try:
        pos.sync_once()
        pos.start_server()
        sale_ids = _sell(pos, 1000)

        # 1: HQ applies the first batch, and the agent dies before it receives the response.
        # 2: the restarted agent resends it and dies half-way through the request, so HQ applies nothing.
        # 3: it resends again, HQ responds "duplicate" for all 200, and the agent dies before recording that.
        for mode in ("after_response", "mid_request", "after_response"):
            proxy.arm(mode)
            cuts = len(proxy.cuts)
            # The agent pushes at once, so the proxy may kill it before its /healthz responds.
            pos.start_agent(wait=False)
            pos.wait_until(lambda cuts=cuts: len(proxy.cuts) > cuts, f"a sales batch cut off {mode}")
        assert proxy.cuts == ["after_response", "mid_request", "after_response"]
        assert pos.query("SELECT count(*) FROM outbox WHERE state = 'pending'") == [(1000,)]

        pos.start_agent()
        pos.wait_until(lambda: pos.agent_health()["pending"] == 0, "draining the outbox to HQ")
    finally:
        proxy.close()

    duplicates = _assert_exactly_once_in_order(lab_hq, pos, sale_ids)
    assert duplicates == 400, "each resend of the first batch should have been answered as 200 duplicates"
    statuses = dict(pos.query("SELECT hq_status, count(*) FROM outbox GROUP BY hq_status"))
    assert statuses == {"duplicate": 200, "applied": 800}


def test_agent_killed_at_random_no_duplicates(lab_hq: LabHq, pos_factory):
    pos: PosCache = pos_factory(lab_hq.url, sync_batch_size=100)
    pos.sync_once()
    pos.start_server()
    sale_ids = _sell(pos, 3000)

    rng = random.Random(7)
    for _kill in range(8):
        pos.start_agent()
        time.sleep(rng.uniform(0.0, 0.15))
        pos.stop_agent(signal.SIGKILL)

    pos.start_agent()
    pos.wait_until(lambda: pos.agent_health()["pending"] == 0, "draining the outbox to HQ")
    _assert_exactly_once_in_order(lab_hq, pos, sale_ids)
