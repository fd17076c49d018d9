"""Provisioning at fleet scale: wall time and API calls of retail.edge.pve_lxc against community.proxmox.proxmox.

For each store count, both modules declare the same containers (one per store unless --per-store sets another count,
spread over the double's three nodes) in one looped task run by ansible-playbook against the in-memory PVE API
double (lab/pve). Each measurement is a pair of runs on an empty cluster: the first run creates the containers,
the second (no-op) run must change nothing. Modules alternate within each repeat (A, B, A, B) because this
machine is shared and noisy; the double is reset before every first run, and the API calls of each run are read
from the double's /_lab/stats.

Usage: python bench/provision_scale.py [--stores 1 10 50 200] [--repeats 3] [--json results.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lab.pve.testing import DEFAULT_LAB_CONFIG, PveDouble  # noqa: E402
from tests.support import VENV_BIN, ansible_env  # noqa: E402

OSTEMPLATE = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
FIRST_VMID = 1000
NODES = ("pve1", "pve2", "pve3")
MODULES = ("retail.edge.pve_lxc", "community.proxmox.proxmox")

PLAYBOOK_HEAD = """---
- name: Provision the store containers
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
"""

TASKS = {
    "retail.edge.pve_lxc": """    - name: Declare the containers with retail.edge.pve_lxc
      retail.edge.pve_lxc:
        api_host: "{{ pve.api_host }}"
        api_port: "{{ pve.api_port }}"
        api_user: root@pam
        api_password: "{{ pve.api_password }}"
        ca_path: "{{ pve.ca_path }}"
        vmid: "{{ item.vmid }}"
        hostname: "{{ item.hostname }}"
        node: "{{ item.node }}"
        ostemplate: "{{ ostemplate }}"
        storage: local-lvm
        disk_size: 4G
        cores: 1
        memory: 512
        swap: 512
        netif:
          net0: "{{ item.net0 }}"
        onboot: true
        state: present
      loop: "{{ containers }}"
""",
    "community.proxmox.proxmox": """    - name: Declare the containers with community.proxmox.proxmox
      community.proxmox.proxmox:
        api_host: "{{ pve.api_host }}"
        api_port: "{{ pve.api_port }}"
        api_user: root@pam
        api_password: "{{ pve.api_password }}"
        validate_certs: true
        vmid: "{{ item.vmid }}"
        hostname: "{{ item.hostname }}"
        node: "{{ item.node }}"
        ostemplate: "{{ ostemplate }}"
        disk: local-lvm:4
        cores: 1
        memory: 512
        swap: 512
        netif:
          net0: "{{ item.net0 }}"
        onboot: true
        update: true
        state: present
      loop: "{{ containers }}"
""",
}


def declared_containers(count: int) -> list[dict[str, Any]]:
    return [
        {
            "vmid": FIRST_VMID + index,
            "hostname": f"store{index:03d}-edge",
            "node": NODES[index % len(NODES)],
            "net0": f"name=eth0,bridge=vmbr0,ip=198.51.100.{10 + index % 200}/24,gw=198.51.100.1",
        }
        for index in range(count)
    ]


def run_playbook(pve: PveDouble, playbook: Path, extra_vars: dict[str, Any]) -> dict[str, Any]:
    pve.reset_stats()
    env = ansible_env({"REQUESTS_CA_BUNDLE": str(pve.ca_file)})
    command = [str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", str(playbook), "-e", json.dumps(extra_vars)]
    started = time.monotonic()
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"{playbook.name} failed ({proc.returncode}):\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}")
    recap = re.search(r"changed=(\d+)", proc.stdout)
    return {
        "seconds": seconds,
        "requests": pve.stats()["requests"],
        "changed": int(recap.group(1)) if recap else None,
    }


def spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "seconds": spread([run["seconds"] for run in runs]),
        "requests": spread([float(run["requests"]) for run in runs]),
        "changed": sorted({run["changed"] for run in runs}),
    }


def measure(pve: PveDouble, playbooks: dict[str, Path], stores: int, per_store: int, repeats: int) -> dict[str, Any]:
    containers = declared_containers(stores * per_store)
    extra_vars = {
        "pve": pve.module_defaults(),
        "containers": containers,
        "ostemplate": OSTEMPLATE,
        "ansible_python_interpreter": sys.executable,
    }
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {name: {"first": [], "noop": []} for name in MODULES}
    for repeat in range(repeats):
        for name in MODULES:
            pve.reset()
            for phase in ("first", "noop"):
                result = run_playbook(pve, playbooks[name], extra_vars)
                runs[name][phase].append(result)
                print(
                    f"{stores} stores, repeat {repeat + 1}, {name}, {phase}: {result['seconds']:.1f} s, "
                    f"{result['requests']} requests, changed={result['changed']}",
                    file=sys.stderr,
                    flush=True,
                )
    point: dict[str, Any] = {"stores": stores, "containers": len(containers), "repeats": repeats}
    for name in MODULES:
        point[name] = {phase: summarize(items) for phase, items in runs[name].items()}
    point["ratio"] = {
        phase: {
            "seconds": point[MODULES[1]][phase]["seconds"]["median"] / point[MODULES[0]][phase]["seconds"]["median"],
            "requests": point[MODULES[1]][phase]["requests"]["median"] / point[MODULES[0]][phase]["requests"]["median"],
        }
        for phase in ("first", "noop")
    }
    return point


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "| stores | module | run | min / median / max s | API requests | changed |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for point in results["points"]:
        for name in MODULES:
            for phase in ("first", "noop"):
                data = point[name][phase]
                sec = " / ".join(f"{data['seconds'][key]:.1f}" for key in ("min", "median", "max"))
                lines.append(
                    f"| {point['stores']} | {name} | {phase} | {sec} "
                    f"| {data['requests']['median']:.0f} | {'/'.join(str(c) for c in data['changed'])} |"
                )
    lines += ["", "| stores | time ratio first | time ratio no-op | request ratio first | request ratio no-op |"]
    lines.append("| --- | --- | --- | --- | --- |")
    for point in results["points"]:
        ratio = point["ratio"]
        lines.append(
            f"| {point['stores']} | {ratio['first']['seconds']:.2f} | {ratio['noop']['seconds']:.2f} "
            f"| {ratio['first']['requests']:.2f} | {ratio['noop']['requests']:.2f} |"
        )
    lines += ["", "Ratios are community.proxmox.proxmox / retail.edge.pve_lxc, medians of the same run."]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--stores", type=int, nargs="+", default=[1, 10, 50, 200], help="store counts to measure")
    parser.add_argument("--per-store", type=int, default=1, help="containers per store (default: 1)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats per store count")
    parser.add_argument("--json", type=Path, help="also write the raw results to this file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="provision-scale-") as scratch:
        work = Path(scratch)
        playbooks = {}
        for index, name in enumerate(MODULES):
            playbooks[name] = work / f"module{index}.yml"
            playbooks[name].write_text(PLAYBOOK_HEAD + TASKS[name])
        pve = PveDouble(work / "pve", copy.deepcopy(DEFAULT_LAB_CONFIG)).start()
        try:
            points = [measure(pve, playbooks, stores, args.per_store, args.repeats) for stores in args.stores]
        finally:
            pve.stop()

    results = {
        "points": points,
        "per_store": args.per_store,
        "machine": f"{platform.platform()}, {platform.processor() or platform.machine()}",
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
    }
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
