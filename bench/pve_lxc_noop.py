"""Time a no-op run over 20 declared containers: retail.edge.pve_lxc against community.proxmox.proxmox.

Both modules run through ansible-playbook against the same PVE API double (lab/pve), one task with a
loop over the same 20 running containers, declared with options both modules understand. Runs are
interleaved (A, B, A, B, ...) because this machine is shared and noisy. Each run starts from reset
request counters, and the API calls are read from the double's /_lab/stats.

Usage: python bench/pve_lxc_noop.py [--repeats 3] [--containers 20] [--json results.json]
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
FIRST_VMID = 400
NODES = ("pve1", "pve2", "pve3")

PLAYBOOK_HEAD = """---
- name: No-op run over the declared containers
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
"""

RETAIL_TASK = """    - name: Declare the containers with retail.edge.pve_lxc
      retail.edge.pve_lxc:
        api_host: "{{ pve.api_host }}"
        api_port: "{{ pve.api_port }}"
        api_user: root@pam
        api_password: "{{ pve.api_password }}"
        ca_path: "{{ pve.ca_path }}"
        vmid: "{{ item.vmid }}"
        hostname: "{{ item.hostname }}"
        node: "{{ item.node }}"
        cores: 1
        memory: 512
        swap: 512
        netif:
          net0: "{{ item.net0 }}"
        features: nesting=1
        onboot: true
      loop: "{{ containers }}"
"""

COMMUNITY_TASK = """    - name: Declare the containers with community.proxmox.proxmox
      community.proxmox.proxmox:
        api_host: "{{ pve.api_host }}"
        api_port: "{{ pve.api_port }}"
        api_user: root@pam
        api_password: "{{ pve.api_password }}"
        validate_certs: true
        vmid: "{{ item.vmid }}"
        hostname: "{{ item.hostname }}"
        node: "{{ item.node }}"
        cores: 1
        memory: 512
        swap: 512
        netif:
          net0: "{{ item.net0 }}"
        features: [nesting=1]
        onboot: true
        update: true
        state: present
      loop: "{{ containers }}"
"""


def declared_containers(count: int) -> list[dict[str, Any]]:
    return [
        {
            "vmid": FIRST_VMID + index,
            "hostname": f"store-ct{index:02d}",
            "node": NODES[index % len(NODES)],
            "net0": f"name=eth0,bridge=vmbr0,ip=198.51.100.{10 + index}/24,gw=198.51.100.1",
        }
        for index in range(count)
    ]


def create_containers(pve: PveDouble, containers: list[dict[str, Any]]) -> None:
    """Create and start the containers through the API, matching the declaration exactly."""
    for item in containers:
        upid = pve.api(
            "POST",
            f"/nodes/{item['node']}/lxc",
            vmid=item["vmid"],
            hostname=item["hostname"],
            ostemplate=OSTEMPLATE,
            rootfs="local-lvm:4",
            cores=1,
            memory=512,
            swap=512,
            net0=item["net0"],
            features="nesting=1",
            onboot=1,
            unprivileged=1,
        )
        pve.wait_task(upid)
        pve.wait_task(pve.api("POST", f"/nodes/{item['node']}/lxc/{item['vmid']}/status/start"))


def run_once(pve: PveDouble, playbook: Path, extra_vars: dict[str, Any]) -> dict[str, Any]:
    pve.reset_stats()
    env = ansible_env({"REQUESTS_CA_BUNDLE": str(pve.ca_file)})
    command = [str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", str(playbook), "-e", json.dumps(extra_vars)]
    started = time.monotonic()
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"{playbook.name} failed ({proc.returncode}):\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}")
    recap = re.search(r"changed=(\d+)", proc.stdout)
    stats = pve.stats()
    return {
        "seconds": seconds,
        "requests": stats["requests"],
        "by_route": stats["by_route"],
        "changed": int(recap.group(1)) if recap else None,
    }


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    seconds = [run["seconds"] for run in runs]
    return {
        "min_s": min(seconds),
        "median_s": statistics.median(seconds),
        "max_s": max(seconds),
        "requests": sorted({run["requests"] for run in runs}),
        "changed": sorted({run["changed"] for run in runs}),
        "by_route": runs[-1]["by_route"],
    }


def markdown(results: dict[str, Any]) -> str:
    retail, community = results["retail.edge.pve_lxc"], results["community.proxmox.proxmox"]
    lines = [
        f"{results['containers']} running containers, no-op run, {results['repeats']} interleaved repeats per module.",
        "",
        "| module | API requests per run | changed | min s | median s | max s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, data in (("retail.edge.pve_lxc", retail), ("community.proxmox.proxmox", community)):
        requests_text = "/".join(str(value) for value in data["requests"])
        changed_text = "/".join(str(value) for value in data["changed"])
        lines.append(
            f"| {name} | {requests_text} | {changed_text} | {data['min_s']:.1f} | {data['median_s']:.1f} | "
            f"{data['max_s']:.1f} |"
        )
    lines += [
        "",
        f"Median time ratio community.proxmox / retail.edge: {results['ratio_median']:.2f}; "
        f"API request ratio: {results['ratio_requests']:.2f}.",
        "",
        "Requests by route in the last run:",
        "",
    ]
    for name, data in (("retail.edge.pve_lxc", retail), ("community.proxmox.proxmox", community)):
        routes = ", ".join(f"`{route}` {count}" for route, count in sorted(data["by_route"].items()))
        lines.append(f"- {name}: {routes}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--containers", type=int, default=20)
    parser.add_argument("--json", type=Path, help="also write the raw results to this file")
    args = parser.parse_args()

    containers = declared_containers(args.containers)
    with tempfile.TemporaryDirectory(prefix="pve-lxc-bench-") as scratch:
        work = Path(scratch)
        playbooks = {
            "retail.edge.pve_lxc": work / "retail.yml",
            "community.proxmox.proxmox": work / "community.yml",
        }
        playbooks["retail.edge.pve_lxc"].write_text(PLAYBOOK_HEAD + RETAIL_TASK)
        playbooks["community.proxmox.proxmox"].write_text(PLAYBOOK_HEAD + COMMUNITY_TASK)

        pve = PveDouble(work / "pve", copy.deepcopy(DEFAULT_LAB_CONFIG)).start()
        try:
            create_containers(pve, containers)
            extra_vars = {
                "pve": pve.module_defaults(),
                "containers": containers,
                "ansible_python_interpreter": sys.executable,
            }
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in playbooks}
            for repeat in range(args.repeats):
                for name, playbook in playbooks.items():
                    result = run_once(pve, playbook, extra_vars)
                    runs[name].append(result)
                    print(
                        f"repeat {repeat + 1}: {name}: {result['seconds']:.1f} s, {result['requests']} requests, "
                        f"changed={result['changed']}",
                        file=sys.stderr,
                    )
        finally:
            pve.stop()

    results: dict[str, Any] = {name: summary(items) for name, items in runs.items()}
    retail, community = results["retail.edge.pve_lxc"], results["community.proxmox.proxmox"]
    results.update(
        containers=args.containers,
        repeats=args.repeats,
        ratio_median=community["median_s"] / retail["median_s"],
        ratio_requests=max(community["requests"]) / max(retail["requests"]),
        machine=f"{platform.platform()}, {platform.processor() or platform.machine()}",
        python=platform.python_version(),
        date=time.strftime("%Y-%m-%d"),
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
