"""The lab inventory and the main playbooks, checked without the lab running."""

from __future__ import annotations

import json

import pytest

from tests.support import ROOT, VENV_BIN, run

INVENTORY = ROOT / "inventories" / "lab"
PLAYBOOKS = ("site.yml", "provision.yml", "secrets.yml", "deploy.yml", "smoke.yml", "compliance.yml")


def inventory_list(env_lab_dir: str | None = None) -> dict:
    command = [str(VENV_BIN / "ansible-inventory"), "-i", str(INVENTORY), "--list"]
    if env_lab_dir is None:
        command = ["env", "-u", "RETAIL_EDGE_LAB_DIR", *command]
    else:
        command = ["env", f"RETAIL_EDGE_LAB_DIR={env_lab_dir}", *command]
    proc = run(command)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def plain(value: object) -> object:
    """Drop ansible-inventory's {"__ansible_unsafe": ...} wrapper."""
    return value["__ansible_unsafe"] if isinstance(value, dict) and "__ansible_unsafe" in value else value


def test_graph_lists_store_nodes_and_workloads() -> None:
    proc = run([str(VENV_BIN / "ansible-inventory"), "-i", str(INVENTORY), "--graph"])
    assert proc.returncode == 0, proc.stderr
    for name in ("@store_s001", "@store_s001_nodes", "s001-pve1", "s001-pve2", "s001-pve3", "@wave_canary"):
        assert name in proc.stdout


def test_containers_on_lab_bridge() -> None:
    hostvars = inventory_list()["_meta"]["hostvars"]
    containers = {
        name: plain(hostvars[name]["ansible_host"]) for name in hostvars if "retail_edge_container" in hostvars[name]
    }
    assert len(containers) == 8
    assert sorted(containers.values()) == [f"198.51.100.{number}" for number in range(21, 29)]


def test_pve_api_points_at_double() -> None:
    hostvars = inventory_list()["_meta"]["hostvars"]
    assert plain(hostvars["s001-pve1"]["retail_edge_store"]["pve_api_host"]) == "127.0.0.1"


@pytest.mark.parametrize("lab_dir", [None, "/srv/other-lab"])
def test_ssh_key_path_follows_lab_dir(lab_dir: str | None) -> None:
    hostvars = inventory_list(lab_dir)["_meta"]["hostvars"]
    expected = f"{lab_dir or (ROOT / '.lab')}/ssh/id_ed25519"
    assert plain(hostvars["s001-pos-cache"]["ansible_ssh_private_key_file"]) == expected


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_playbook_syntax(playbook: str) -> None:
    proc = run(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(INVENTORY), "--syntax-check", str(ROOT / "playbooks" / playbook)]
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
