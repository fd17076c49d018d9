"""The POS cache HTTP API as a register uses it: sales, idempotency, auth, lookups and input errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.fixtures_hq import LabHq
from tests.fixtures_pos import PosCache, PosClient, new_key


# One HQ and one POS server for the whole module: these tests only add sales with fresh keys and log in,
# so they do not disturb each other, and starting the processes once saves most of the run time.
@pytest.fixture(scope="module")
def lab_hq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHq]:
    hq = LabHq(tmp_path_factory.mktemp("hq"))
    hq.start()
    yield hq
    hq.stop()


@pytest.fixture(scope="module")
def pos(lab_hq: LabHq, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PosCache]:
    cache = PosCache(tmp_path_factory.mktemp("pos"), lab_hq.url, login_max_failures=3, login_lockout_seconds=600)
    cache.sync_once()
    cache.start_server()
    yield cache
    cache.stop()


@pytest.fixture
def register(pos: PosCache) -> Iterator[PosClient]:
    client = pos.client("c001")
    yield client
    client.close()


def test_sale_priced_from_catalog(lab_hq: LabHq, register: PosClient):
    catalog = {item["sku"]: item for item in lab_hq.get("/catalog").json()["items"]}
    reply = register.sell(new_key(), [{"sku": "SKU-00001", "qty": 2}, {"sku": "SKU-00002", "qty": 1}])
    assert reply.status == 201, reply.body
    sale = reply.body
    assert reply.headers["location"] == f"/sales/{sale['sale_id']}"
    assert sale["store_id"] == "store-0001"
    assert sale["cashier_id"] == "c001"
    assert sale["lines"][0]["unit_price_cents"] == catalog["SKU-00001"]["base_price_cents"]
    assert sale["lines"][0]["name"] == catalog["SKU-00001"]["name"]
    expected_total = 2 * catalog["SKU-00001"]["base_price_cents"] + catalog["SKU-00002"]["base_price_cents"]
    assert sale["total_cents"] == expected_total


def test_sale_read_back_with_sync_state(register: PosClient):
    created = register.sell(new_key(), [{"sku": "SKU-00003", "qty": 1}]).body
    reply = register.request("GET", f"/sales/{created['sale_id']}")
    assert reply.status == 200
    assert reply.body["sync"]["state"] == "pending"
    assert {key: value for key, value in reply.body.items() if key != "sync"} == created


def test_register_price_overrides_catalog(register: PosClient):
    lines = [{"sku": "SKU-00004", "qty": 3, "unit_price_cents": 99}]
    reply = register.sell(new_key(), lines, payments=[{"method": "card", "amount_cents": 297}])
    assert reply.status == 201, reply.body
    assert reply.body["total_cents"] == 297
    assert reply.body["payments"] == [{"method": "card", "amount_cents": 297}]


def test_retry_returns_first_result(register: PosClient):
    key = new_key()
    first = register.sell(key, [{"sku": "SKU-00005", "qty": 1}])
    retry = register.sell(key, [{"sku": "SKU-00005", "qty": 1}])
    assert first.status == retry.status == 201
    assert retry.body == first.body
    assert retry.headers.get("idempotent-replayed") == "true"
    assert "idempotent-replayed" not in first.headers


def test_reused_key_other_content_409(register: PosClient):
    key = new_key()
    first = register.sell(key, [{"sku": "SKU-00005", "qty": 1}])
    reused = register.sell(key, [{"sku": "SKU-00005", "qty": 2}])
    assert reused.status == 409
    assert reused.body["error"] == "idempotency_conflict"
    assert reused.body["sale_id"] == first.body["sale_id"]


def test_concurrent_retries_make_one_sale(pos: PosCache, register: PosClient):
    key = new_key()
    clients = [PosClient(pos.port, register.token) for _client in range(12)]
    with ThreadPoolExecutor(len(clients)) as pool:
        replies = list(pool.map(lambda client: client.sell(key, [{"sku": "SKU-00009", "qty": 1}]), clients))
    for client in clients:
        client.close()
    assert {reply.status for reply in replies} == {201}
    assert len({reply.body["sale_id"] for reply in replies}) == 1
    assert sum(1 for reply in replies if "idempotent-replayed" not in reply.headers) == 1


def test_reused_key_other_cashier_409(pos: PosCache, register: PosClient):
    key = new_key()
    assert register.sell(key, [{"sku": "SKU-00005", "qty": 1}]).status == 201
    other = pos.client("c002")
    assert other.sell(key, [{"sku": "SKU-00005", "qty": 1}]).status == 409
    other.close()


def test_no_credentials_401(pos: PosCache):
    anonymous = PosClient(pos.port)
    for method, path in [("POST", "/sales"), ("GET", "/sales/x"), ("GET", "/catalog"), ("GET", "/prices?sku=A")]:
        reply = anonymous.request(method, path, {} if method == "POST" else None, {"Idempotency-Key": new_key()})
        assert reply.status == 401, (method, path)
        assert reply.body["error"] == "unauthorized"
        assert reply.headers["www-authenticate"].startswith("Bearer")
    anonymous.token = "not-a-session"
    assert anonymous.sell(new_key(), [{"sku": "SKU-00001", "qty": 1}]).status == 401
    anonymous.close()


def test_wrong_password_401(pos: PosCache):
    client = PosClient(pos.port)
    assert client.login("c001", "wrong").status == 401
    assert client.login("c999", "lab-pass-c999").status == 401
    assert client.token is None
    client.close()


def test_repeated_failures_lock_login(pos: PosCache):
    client = PosClient(pos.port)
    statuses = [client.login("c003", "wrong").status for _attempt in range(3)]
    assert statuses == [401, 401, 401]
    locked = client.login("c003")
    assert locked.status == 429
    assert int(locked.headers["retry-after"]) > 0
    assert client.login("c004").status == 201
    client.close()


def test_logout_ends_session(register: PosClient):
    assert register.request("DELETE", "/sessions/current").status == 204
    assert register.sell(new_key(), [{"sku": "SKU-00001", "qty": 1}]).status == 401


@pytest.mark.parametrize(
    "case",
    [
        (
            {"register_id": "r1", "lines": [{"sku": "SKU-00001", "qty": 1}]},
            {"Idempotency-Key": ""},
            400,
            "missing_key",
            "Idempotency-Key",
        ),
        (
            {"register_id": "r1", "lines": [{"sku": "SKU-00001", "qty": 1}]},
            {"Idempotency-Key": "bad key!"},
            400,
            "invalid_key",
            "Idempotency-Key",
        ),
        (b"{not json", {}, 400, "invalid_json", None),
        ({"register_id": "r1", "lines": []}, {}, 422, "invalid_sale", "lines"),
        ({"register_id": "r1", "lines": [{"sku": "SKU-00001", "qty": 0}]}, {}, 422, "invalid_sale", "lines[0].qty"),
        ({"register_id": "r1", "lines": [{"sku": "SKU-00001", "qty": True}]}, {}, 422, "invalid_sale", "lines[0].qty"),
        (
            {"register_id": "r1", "lines": [{"sku": "SKU-00001", "qty": 1, "colour": "red"}]},
            {},
            422,
            "invalid_sale",
            "lines[0]",
        ),
        ({"lines": [{"sku": "SKU-00001", "qty": 1}]}, {}, 422, "invalid_sale", "register_id"),
        ({"register_id": "r1", "lines": [{"sku": "SKU-99999", "qty": 1}]}, {}, 422, "unknown_sku", "lines[0].sku"),
        (
            {
                "register_id": "r1",
                "lines": [{"sku": "SKU-00001", "qty": 1}],
                "payments": [{"method": "cash", "amount_cents": 1}],
            },
            {},
            422,
            "payment_mismatch",
            "payments",
        ),
        (
            {
                "register_id": "r1",
                "lines": [{"sku": "SKU-00001", "qty": 1}],
                "payments": [{"method": "barter", "amount_cents": 1}],
            },
            {},
            422,
            "invalid_sale",
            "payments[0].method",
        ),
    ],
)
def test_bad_sale_input_4xx(register: PosClient, case):
    body, headers, status, error, field = case
    all_headers = {"Idempotency-Key": new_key(), **headers}
    reply = register.request("POST", "/sales", body, all_headers)
    assert reply.status == status, reply.body
    assert reply.body["error"] == error
    assert reply.body.get("field") == field
    assert reply.body["detail"]


def test_wrong_content_type_415(register: PosClient):
    reply = register.request(
        "POST", "/sales", b"register_id=r1", {"Idempotency-Key": new_key(), "Content-Type": "text/plain"}
    )
    assert reply.status == 415


def test_oversized_body_413(register: PosClient):
    lines = [{"sku": "SKU-00001", "qty": 1}] * 20000
    reply = register.sell(new_key(), lines)
    assert reply.status == 413


def test_unknown_sale_404(register: PosClient):
    reply = register.request("GET", "/sales/00000000-0000-0000-0000-000000000000")
    assert reply.status == 404
    assert reply.body["error"] == "sale_not_found"


def test_catalog_lookup_matches_hq(lab_hq: LabHq, register: PosClient):
    hq_items = lab_hq.get("/catalog").json()["items"]
    page = register.request("GET", "/catalog?limit=2").body
    assert [item["sku"] for item in page["items"]] == ["SKU-00001", "SKU-00002"]
    assert page["next_after"] == "SKU-00002"
    rest = register.request("GET", "/catalog?limit=1000&after=SKU-00002").body
    assert len(rest["items"]) == len(hq_items) - 2
    assert rest["next_after"] is None
    assert register.request("GET", "/catalog/SKU-00042").body == hq_items[41]
    assert register.request("GET", "/catalog/SKU-99999").status == 404
    assert register.request("GET", "/catalog?limit=0").status == 400


def test_price_lookup(lab_hq: LabHq, register: PosClient):
    prices = {item["sku"]: item["base_price_cents"] for item in lab_hq.get("/catalog").json()["items"]}
    reply = register.request("GET", "/prices?sku=SKU-00007&sku=SKU-00008&sku=NOPE")
    assert reply.status == 200
    assert reply.body == {
        "prices_cents": {"SKU-00007": prices["SKU-00007"], "SKU-00008": prices["SKU-00008"]},
        "unknown": ["NOPE"],
    }
    assert register.request("GET", "/prices").status == 400


def test_healthz_reports_outbox(register: PosClient):
    before = register.request("GET", "/healthz").body["outbox"]["pending"]
    register.sell(new_key(), [{"sku": "SKU-00001", "qty": 1}])
    health = register.request("GET", "/healthz").body
    assert health["status"] == "ok"
    assert health["outbox"]["pending"] == before + 1
    assert health["catalog_ready"] is True
    assert health["cashiers_ready"] is True


def _sample(metrics_text: str, name: str) -> float:
    for line in metrics_text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} is not in /metrics")


def test_metrics_expose_sales_and_queue(register: PosClient):
    before = register.request("GET", "/metrics").body
    register.sell(new_key(), [{"sku": "SKU-00001", "qty": 1}])
    after = register.request("GET", "/metrics").body
    for name in (
        'pos_sales_total{outcome="created"}',
        'pos_outbox_pending_sales{store_id="store-0001"}',
        "pos_sale_commit_seconds_count",
    ):
        assert _sample(after, name) == _sample(before, name) + 1, name
    assert _sample(after, 'pos_outbox_oldest_pending_age_seconds{store_id="store-0001"}') > 0


def test_server_logs_json_with_ids(pos: PosCache, register: PosClient):
    sale_id = register.sell(new_key(), [{"sku": "SKU-00001", "qty": 1}]).body["sale_id"]
    records = [json.loads(line) for line in pos.server_log.read_text().splitlines() if line.startswith("{")]
    recorded = [record for record in records if record.get("sale_id") == sale_id]
    assert recorded, "no log record names the sale id"
    assert recorded[0]["store_id"] == "store-0001"
    assert recorded[0]["msg"] == "sale recorded"
