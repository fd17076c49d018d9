"""Behaviour of the rules_engine role: prices answer, and a rule set change reloads without a restart."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.molecule.verify import (
    http_get,
    installed_wheels,
    instance_address,
    poll,
    run_scenario_playbook,
    unit_property,
)

UNIT = "retail-edge-rules"
SCENARIO_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture
def base_url(host):
    return f"http://{instance_address(host)}:8082"


def publish_rules(rules_src: Path) -> subprocess.CompletedProcess[str]:
    """Publish a rule set through the role's "rules" entry point."""
    return run_scenario_playbook("publish_rules.yml", {"rules_src": str(rules_src)})


def active_release(host) -> str:
    # /etc/retail-edge/rules is root:retail-rules 0750, so the admin user reads it through sudo.
    return host.check_output("sudo readlink /etc/retail-edge/rules/current")


def test_unit_running(host):
    assert host.service(UNIT).is_running
    assert host.service(UNIT).is_enabled
    assert unit_property(host, UNIT, "User") == "retail-rules"


def test_rules_wheels_copied(host):
    wheels = installed_wheels(host, "rules")
    assert any(name.startswith("wasmtime-") for name in wheels)
    assert not [name for name in wheels if name.startswith(("opencv", "onnxruntime", "numpy"))]


def test_rules_published_as_release(host):
    release = active_release(host)
    assert release.startswith("/etc/retail-edge/rules/releases/")
    # The deploy step compiled each .wat to a sibling .wasm.
    assert host.run(f"sudo test -f {release}/perishable_markdown.wasm").rc == 0


def test_healthz_lists_example_rules(base_url):
    health = poll(lambda: http_get(f"{base_url}/healthz").json().get("catalog_skus", 0) > 0)
    assert health, http_get(f"{base_url}/healthz").text
    body = http_get(f"{base_url}/healthz").json()
    assert body["rules"] == ["perishable-markdown", "overstock-promo"]
    assert body["last_reload_error"] is None


def test_price_answers(base_url):
    response = http_get(f"{base_url}/price/SKU-00001")
    assert response.status_code == 200, response.text
    quote = response.json()
    assert quote["sku"] == "SKU-00001"
    assert quote["price_cents"] >= quote["floor_cents"]
    assert quote["rule"] in {"perishable-markdown", "overstock-promo"}


def test_unknown_and_invalid_sku(base_url):
    assert http_get(f"{base_url}/price/SKU-99999").status_code == 404
    assert http_get(f"{base_url}/price/bad%20sku").status_code == 400


def test_rule_change_reloads_without_restart(host, base_url):
    pid_before = unit_property(host, UNIT, "MainPID")
    restarts_before = unit_property(host, UNIT, "NRestarts")
    version_before = http_get(f"{base_url}/healthz").json()["rules_version"]

    result = publish_rules(SCENARIO_DIR / "files" / "flat_promo")
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]

    health = http_get(f"{base_url}/healthz").json()
    assert health["rules"] == ["molecule-flat"]
    assert health["rules_version"] != version_before
    quote = http_get(f"{base_url}/price/SKU-00001").json()
    assert quote["rule"] == "molecule-flat"
    assert quote["promo_id"] == "molecule-10"
    assert unit_property(host, UNIT, "MainPID") == pid_before
    assert unit_property(host, UNIT, "NRestarts") == restarts_before


def test_broken_rule_set_not_published(host, base_url):
    active = active_release(host)
    version_before = http_get(f"{base_url}/healthz").json()["rules_version"]

    result = publish_rules(SCENARIO_DIR / "files" / "broken")
    assert result.returncode != 0
    # The compiler names the module it rejected; failed results may go to stderr.
    assert "broken.wat" in result.stdout + result.stderr

    assert active_release(host) == active
    health = http_get(f"{base_url}/healthz").json()
    assert health["rules_version"] == version_before
    assert health["last_reload_error"] is None
