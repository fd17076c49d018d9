"""The retail.edge.stores inventory plugin, driven through ansible-inventory."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from tests.support import ROOT, VENV_BIN, run, run_playbook


def plain(value):
    """Strip the {"__ansible_unsafe": ...} wrappers that ansible-inventory 2.19 puts around untrusted strings."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def inventory_list(source: Path) -> dict:
    proc = run([str(VENV_BIN / "ansible-inventory"), "-i", str(source), "--list"])
    assert proc.returncode == 0, proc.stderr
    return plain(json.loads(proc.stdout))


def write_source(tmp_path: Path, **options) -> Path:
    source = tmp_path / "fleet.stores.yml"
    source.write_text(yaml.safe_dump({"plugin": "retail.edge.stores", **options}))
    return source


def store(store_id: str, **overrides) -> dict:
    entry = {
        "id": store_id,
        "region": "eu-west",
        "format": "supermarket",
        "wave": "wave1",
        "subnet": "10.20.1.0/24",
        "nodes": [f"{store_id}-pve1", f"{store_id}-pve2"],
    }
    entry.update(overrides)
    return entry


def test_example_inventory_groups():
    data = inventory_list(ROOT / "inventories" / "example")
    assert set(data["wave_canary"]["children"]) == {"store_s001", "store_s201"}
    assert "store_s002" in data["format_express"]["children"]
    assert set(data["gpu_stores"]["children"]) == {"store_s001", "store_s003", "store_s103"}
    assert "s002-vision-inference" not in data["_meta"]["hostvars"]
    assert len(data["vision_inference"]["hosts"]) == 5


def test_example_inventory_host_vars():
    hostvars = inventory_list(ROOT / "inventories" / "example")["_meta"]["hostvars"]
    varnish = hostvars["s003-varnish-edge"]
    assert varnish["ansible_host"] == "10.20.3.21"
    assert varnish["retail_edge_container"]["memory"] == 4096
    assert varnish["varnish_edge_inventory_grace"] == 3600
    assert varnish["retail_edge_store"]["pve_api_host"] == "10.20.3.11"
    assert hostvars["s201-pos-cache"]["retail_edge_store"]["pve_api_port"] == 443
    assert hostvars["s201-pos-cache"]["retail_edge_timezone"] == "America/New_York"
    assert hostvars["s001-vision-inference"]["retail_edge_container"]["gpu"] is True
    assert hostvars["s101-vision-inference"]["retail_edge_container"]["gpu"] is False
    assert hostvars["s001-pve2"]["ansible_host"] == "10.20.1.12"


def test_csv_registry(tmp_path):
    registry = tmp_path / "registry" / "stores.csv"
    registry.parent.mkdir()
    registry.write_text(
        "id,region,format,wave,subnet,nodes,gpu\ns010,us-west,express,wave2,10.40.10.0/24,s010-a;s010-b,yes\n"
    )
    source = tmp_path / "inventory"
    source.mkdir()
    config = write_source(source, registry="../registry/stores.csv")
    data = inventory_list(config)
    assert data["store_s010_nodes"]["hosts"] == ["s010-a", "s010-b"]
    assert data["_meta"]["hostvars"]["s010-pos-cache"]["ansible_host"] == "10.40.10.24"
    assert data["_meta"]["hostvars"]["s010-a"]["retail_edge_store"]["gpu"] is True


def test_fleet_of_500_stores(tmp_path):
    stores = [store(f"s{n:04d}", subnet=f"10.{n // 256}.{n % 256}.0/24", wave=f"wave{n % 5}") for n in range(500)]
    data = inventory_list(write_source(tmp_path, stores=stores))
    assert len(data["containers"]["hosts"]) == 500 * 8
    assert len(data["pve_nodes"]["hosts"]) == 1000
    assert len(data["wave_wave3"]["children"]) == 100


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (store("s1", subnet="10.20.1.5/24"), "subnet '10.20.1.5/24' is invalid"),
        (store("s1", subnet="10.20.1.0/28"), "host offset 21 does not fit subnet 10.20.1.0/28"),
        (store("s1", region="EU West"), "region 'EU West' is invalid"),
        (store("s1", colour="red"), "unknown keys ['colour']"),
        ({"id": "s1", "region": "eu"}, "is missing ['format', 'wave', 'subnet', 'nodes']"),
    ],
)
def test_invalid_store_entry(tmp_path, entry, message):
    proc = run([str(VENV_BIN / "ansible-inventory"), "-i", str(write_source(tmp_path, stores=[entry])), "--list"])
    assert message in proc.stdout + proc.stderr


def test_duplicate_store_id(tmp_path):
    source = write_source(tmp_path, stores=[store("s1"), store("s1", subnet="10.20.2.0/24")])
    proc = run([str(VENV_BIN / "ansible-inventory"), "-i", str(source), "--list"])
    assert "duplicate store id 's1'" in proc.stdout + proc.stderr


def test_shared_vmid_rejected(tmp_path):
    source = write_source(tmp_path, stores=[store("s1")], workloads={"pos_cache": {"vmid": 201}})
    proc = run([str(VENV_BIN / "ansible-inventory"), "-i", str(source), "--list"])
    assert "share vmid 201" in proc.stdout + proc.stderr


@pytest.mark.parametrize("source_kind", ["inline", "yaml_registry"])
def test_store_var_templates_rendered(tmp_path, source_kind):
    """A store var that refers to another var is rendered when a play uses it, not passed on as text."""
    entry = store("s1", vars={"retail_edge_timezone": "Europe/Paris", "site_label": "{{ retail_edge_store.id }}-tz"})
    entry["vars"]["site_banner"] = "{{ site_label }} {{ retail_edge_timezone }}"
    if source_kind == "inline":
        source = write_source(tmp_path, stores=[entry])
    else:
        registry = tmp_path / "registry" / "stores.yml"
        registry.parent.mkdir()
        registry.write_text(yaml.safe_dump({"stores": [entry]}))
        inventory_dir = tmp_path / "inventory"
        inventory_dir.mkdir()
        source = write_source(inventory_dir, registry=str(registry))
    playbook = tmp_path / "show.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Render a store var",
                    "hosts": "s1-pos-cache",
                    "gather_facts": False,
                    "tasks": [
                        {
                            "name": "Write the rendered banner",
                            "delegate_to": "localhost",
                            "ansible.builtin.copy": {
                                "content": "{{ site_banner }}",
                                "dest": str(tmp_path / "banner.txt"),
                                "mode": "0644",
                            },
                        }
                    ],
                }
            ]
        )
    )
    run_playbook(
        playbook,
        inventory=source,
        extra_vars={"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
    )
    assert (tmp_path / "banner.txt").read_text() == "s1-tz Europe/Paris"
