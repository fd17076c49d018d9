"""Time a fleet-sized provision run and its no-op rerun against the PVE double.

One double process serves a cluster per store (lab.pve.fleet); the store registry points every
store's `pve_api_host`/`pve_api_port` at its own cluster. The provision playbook of the fleet tests
declares each workload container with retail.edge.pve_lxc, at the forks AWX would use.

    /work/venv/bin/python bench/fleet_scale.py --stores 200 --workloads varnish_edge,inventory_api --forks 25
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fleet.fleetlab import PLAYBOOKS, recap, start_fleet


def timed_run(fleet, forks: int) -> tuple[float, dict[str, dict[str, int]]]:
    started = time.perf_counter()
    proc = fleet.playbook(PLAYBOOKS / "provision.yml", "--forks", str(forks), timeout=3600)
    return time.perf_counter() - started, recap(proc.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", type=int, default=200)
    parser.add_argument("--nodes", type=int, default=3, help="Proxmox VE nodes per store")
    parser.add_argument("--workloads", default="varnish_edge,inventory_api", help="containers per store")
    parser.add_argument("--forks", type=int, default=25)
    parser.add_argument("--json", type=Path, help="also write the result to this file (bench/run_all.py passes it)")
    args = parser.parse_args()
    workloads = [name for name in args.workloads.split(",") if name]

    with tempfile.TemporaryDirectory(prefix="fleet-scale-") as directory:
        started = time.perf_counter()
        fleet = start_fleet(Path(directory), ["wave1"] * args.stores, workloads=workloads, nodes=args.nodes)
        double_s = time.perf_counter() - started
        try:
            provision_s, first = timed_run(fleet, args.forks)
            noop_s, second = timed_run(fleet, args.forks)
        finally:
            fleet.double.stop()

    result = {
        "stores": args.stores,
        "nodes": args.stores * args.nodes,
        "containers": len(first),
        "forks": args.forks,
        "double_start_s": round(double_s, 1),
        "provision_s": round(provision_s, 1),
        "provision_changed": sum(host["changed"] for host in first.values()),
        "noop_s": round(noop_s, 1),
        "noop_changed": sum(host["changed"] for host in second.values()),
        "failed": sum(host["failed"] + host["unreachable"] for host in (*first.values(), *second.values())),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["failed"] == 0 and result["noop_changed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
