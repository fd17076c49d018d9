"""A fleet-sized provision run: 200 stores of three Proxmox VE nodes, then a rerun that must change nothing.

Every store is its own cluster (its own vmids, port and state) on one PVE double process. Each store
gets two of its workload containers, Varnish and the inventory API, because all eight would take four
times as long on the two-core CI machine without testing anything new (timings in docs/benchmarks.md,
"Fleet scale").
"""

from __future__ import annotations

import pytest

from tests.fleet.fleetlab import PLAYBOOKS, FleetLab, recap

STORES = 200
WORKLOADS = {"varnish_edge": (201, 2, 1024), "inventory_api": (202, 2, 512)}  # vmid, cores, MiB
# AWX runs fleet jobs with a few dozen forks; 25 is what its job templates here set.
FORKS = 25


def provision(fleet: FleetLab) -> dict[str, tuple[int, int, int]]:
    """Run the provision playbook and return (changed, unreachable, failed) per host."""
    proc = fleet.playbook(PLAYBOOKS / "provision.yml", "--forks", str(FORKS), timeout=1800)
    return {host: (row["changed"], row["unreachable"], row["failed"]) for host, row in recap(proc.stdout).items()}


def assert_store_converged(fleet: FleetLab, store: dict) -> None:
    cluster = fleet.cluster(store["id"])
    guests = {item["vmid"]: item for item in cluster.api("GET", "/cluster/resources", type="vm")}
    assert sorted(guests) == sorted(vmid for vmid, _cores, _memory in WORKLOADS.values()), store["id"]
    for workload, (vmid, cores, memory) in WORKLOADS.items():
        guest = guests[vmid]
        assert guest["status"] == "running", (store["id"], workload)
        assert guest["node"] in store["nodes"], (store["id"], workload)
        config = cluster.api("GET", f"/nodes/{guest['node']}/lxc/{vmid}/config")
        hostname = f"{store['id']}-{workload.replace('_', '-')}"
        offset = 21 if workload == "varnish_edge" else 22
        address = store["subnet"].rsplit(".", 1)[0] + f".{offset}/24"
        assert (config["hostname"], config["cores"], config["memory"]) == (hostname, cores, memory)
        assert f"ip={address}" in config["net0"], (store["id"], config["net0"])


@pytest.mark.slow
def test_200_stores_converge_then_noop(make_fleet):
    waves = ["canary"] * 2 + ["wave1"] * 98 + ["wave2"] * 100
    fleet = make_fleet(waves, workloads=list(WORKLOADS), nodes=3)
    assert sum(len(store["nodes"]) for store in fleet.stores) == 3 * STORES

    first = provision(fleet)

    assert len(first) == STORES * len(WORKLOADS)
    assert set(first.values()) == {(1, 0, 0)}
    for store in fleet.stores:
        assert_store_converged(fleet, store)
        fleet.cluster(store["id"]).reset_stats()

    second = provision(fleet)

    assert len(second) == STORES * len(WORKLOADS)
    assert set(second.values()) == {(0, 0, 0)}, "the rerun changed or failed somewhere"
    writes = {
        store["id"]: route
        for store in fleet.stores
        for route, count in fleet.cluster(store["id"]).stats()["by_route"].items()
        if count and not route.startswith("GET ")
    }
    assert writes == {}, f"the no-op rerun sent write requests: {dict(list(writes.items())[:5])}"
