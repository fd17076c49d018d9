"""The inventory API fuzzed from its OpenAPI description (tests/faults/openapi/) with schemathesis.

A real API process with its sync worker and a real lab HQ run on loopback ports. Schemathesis sends valid and
invalid requests for every operation; each answer must be below 500, and each rejection must be a 4xx with a
JSON body that names the error, as the API promises its clients.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, settings

from tests.fixtures_hq import LabHq
from tests.services.conftest import InventoryStack, wait_until

OPENAPI = Path(__file__).parent / "openapi"
inventory_schema = schemathesis.openapi.from_dict(yaml.safe_load((OPENAPI / "inventory.yaml").read_text()))


@pytest.fixture(scope="module")
def inventory_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    hq = LabHq(tmp_path_factory.mktemp("fuzz-hq"))
    hq.start()
    stack = InventoryStack(hq, tmp_path_factory.mktemp("fuzz-inventory")).start()
    try:
        wait_until(lambda: stack.get("/inventory/SKU-00001").status_code == 200, description="first sync")
        yield stack.api.url
    finally:
        stack.stop()
        hq.stop()


def check_answer(response: schemathesis.Response) -> None:
    request = f"{response.request.method} {response.request.url} {response.request.body!r:.300}"
    assert response.status_code < 500, f"{request} -> {response.status_code} {response.text[:500]}"
    if 400 <= response.status_code < 500:
        body = response.json()
        assert isinstance(body, dict), f"{request} -> {response.status_code} without a JSON object: {response.text}"
        assert body.get("error"), f"{request} -> {response.status_code} names no error: {response.text}"


@inventory_schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_inventory_api_fuzzed(case: schemathesis.Case, inventory_url: str) -> None:
    check_answer(case.call(base_url=inventory_url, timeout=10))
