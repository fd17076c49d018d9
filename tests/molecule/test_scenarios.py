"""Run every molecule scenario (create, converge, idempotence, verify, destroy) on LXC lab containers."""

from __future__ import annotations

import subprocess

import pytest

from tests.support import ROOT, VENV_BIN, ansible_env

SCENARIOS = sorted(path.parent.name for path in (ROOT / "molecule").glob("*/molecule.yml"))


# Roles that a Debian container cannot host or that run on the controller, with the tests that prove them.
WITHOUT_SCENARIO = {
    "pve_gpu_host": "configures a node kernel and GPU; tests/integration/test_gpu.py runs it on a prepared root",
    "python_service": "internal; proved through the service roles' scenarios",
    "ceph_pools": "talks to the PVE API from the controller; tests/integration/test_ceph_pools.py converges it twice",
    "vault_store_bootstrap": "talks to Vault from the controller; tests/integration/test_vault_*.py converge it twice",
    "workload_secrets": "proved against the real lab OpenBao in tests/integration/test_vault_*.py",
    "rollout_gate": "queries Prometheus and health URLs from the controller; tests/fleet covers it",
    "container_baseline": "applied to every container by site.yml; tests/e2e and the compliance suite check it",
}


def test_every_role_has_a_scenario():
    roles = {path.name for path in (ROOT / "roles").iterdir() if (path / "tasks" / "main.yml").is_file()}
    assert sorted(roles - set(SCENARIOS) - set(WITHOUT_SCENARIO)) == []


def test_every_scenario_names_a_role():
    roles = {path.name for path in (ROOT / "roles").iterdir()}
    assert sorted(set(SCENARIOS) - roles) == []


@pytest.mark.slow
@pytest.mark.lab_containers
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule_scenario(scenario, lxc_lab):
    env = ansible_env({"RETAIL_EDGE_LAB_DIR": str(lxc_lab.lab_dir)})
    proc = subprocess.run(
        [str(VENV_BIN / "molecule"), "test", "-s", scenario],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert proc.returncode == 0, (
        f"molecule test -s {scenario} exited {proc.returncode}\n"
        f"--- stdout ---\n{proc.stdout[-15000:]}\n--- stderr ---\n{proc.stderr[-5000:]}"
    )
