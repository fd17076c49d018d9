"""The inventory API and the rules engine fuzzed from their OpenAPI descriptions (tests/faults/openapi/).

Real service processes (the inventory API with its sync worker, the rules engine) and a real lab HQ run on
loopback ports. Schemathesis sends valid and
invalid requests for every operation; each answer must be below 500, and each rejection must be a 4xx with a
JSON body that names the error, as the APIs promise their clients. The one exception is the promotion
fragment's 404 for an unknown SKU: its body is empty HTML on purpose, so that an ESI include renders nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, settings

from tests.fixtures_hq import LabHq
from tests.services.conftest import InventoryStack, RulesService, wait_until, write_rules

OPENAPI = Path(__file__).parent / "openapi"
inventory_schema = schemathesis.openapi.from_dict(yaml.safe_load((OPENAPI / "inventory.yaml").read_text()))
rules_schema = schemathesis.openapi.from_dict(yaml.safe_load((OPENAPI / "rules.yaml").read_text()))
FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def lab_hq_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHq]:
    hq = LabHq(tmp_path_factory.mktemp("fuzz-hq"))
    hq.start()
    yield hq
    hq.stop()


@pytest.fixture(scope="module")
def inventory_url(lab_hq_module: LabHq, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    stack = InventoryStack(lab_hq_module, tmp_path_factory.mktemp("fuzz-inventory")).start()
    try:
        wait_until(lambda: stack.get("/inventory/SKU-00001").status_code == 200, description="first sync")
        yield stack.api.url
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def rules_url(lab_hq_module: LabHq, inventory_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work_dir = tmp_path_factory.mktemp("fuzz-rules")
    service = RulesService(lab_hq_module, work_dir, inventory_url)
    write_rules(service.rules_dir, [])
    service.start()
    try:
        wait_until(lambda: service.http.get("/healthz").json()["catalog_skus"] > 0, description="rules catalog")
        yield service.url
    finally:
        service.http.close()
        service.stop()


def check_answer(response: schemathesis.Response) -> None:
    request = f"{response.request.method} {response.request.url} {response.request.body!r:.300}"
    assert response.status_code < 500, f"{request} -> {response.status_code} {response.text[:500]}"
    if response.status_code == 404 and response.headers.get("content-type", [""])[0].startswith("text/html"):
        assert response.content == b"", f"{request} -> 404 with a non-empty fragment"
        return
    if 400 <= response.status_code < 500:
        body = response.json()
        assert isinstance(body, dict), f"{request} -> {response.status_code} without a JSON object: {response.text}"
        assert body.get("error"), f"{request} -> {response.status_code} names no error: {response.text}"


@inventory_schema.parametrize()
@FUZZ
def test_inventory_api_fuzzed(case: schemathesis.Case, inventory_url: str) -> None:
    check_answer(case.call(base_url=inventory_url, timeout=10))


@rules_schema.parametrize()
@FUZZ
def test_rules_engine_fuzzed(case: schemathesis.Case, rules_url: str) -> None:
    check_answer(case.call(base_url=rules_url, timeout=10))
