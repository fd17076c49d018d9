"""Load the PVE double like a fleet run: many store clusters, several containers each.

Starts one double whose cluster contains every store's nodes (the worst case for its state file), creates
the containers, then sends config reads and updates from parallel clients and reports throughput,
latency percentiles, the state file size and how often it was written.

    /work/venv/bin/python bench/pve_double_fleet.py --stores 200 --containers 5 --clients 8
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab.pve.testing import DEFAULT_LAB_CONFIG, PveDouble

TEMPLATE = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run(stores: int, containers: int, clients: int, rounds: int, persist_interval_s: float) -> dict[str, object]:
    config = json.loads(json.dumps(DEFAULT_LAB_CONFIG))
    config["persist"] = {"interval_s": persist_interval_s}
    config["nodes"] = [f"store{store:04d}-pve{node}" for store in range(stores) for node in (1, 2, 3)]
    config["storages"]["local-lvm"]["size_gib"] = 100_000
    config["tasks"] = {"durations": {"default": 0.0}}
    with tempfile.TemporaryDirectory() as directory:
        double = PveDouble(Path(directory) / "pve", config).start()
        local = threading.local()

        def client() -> PveDouble:
            # One session (and TLS connection) per client thread, as each Ansible fork has its own.
            if not hasattr(local, "double"):
                local.double = PveDouble.__new__(PveDouble)
                local.double.__dict__.update({**double.__dict__, "_session": None, "_csrf": None})
            return local.double

        targets = [
            (f"store{store:04d}-pve{1 + index % 3}", 100 + store * containers + index)
            for store in range(stores)
            for index in range(containers)
        ]

        def create(target: tuple[str, int]) -> None:
            node, vmid = target
            api = client()
            upid = api.api("POST", f"/nodes/{node}/lxc", vmid=vmid, ostemplate=TEMPLATE, rootfs="local-lvm:8")
            api.wait_task(upid)

        started = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(create, targets))
        create_s = time.perf_counter() - started

        latencies: list[float] = []
        lock = threading.Lock()

        def read_and_update(target: tuple[str, int]) -> None:
            node, vmid = target
            api = client()
            for round_number in range(rounds):
                begin = time.perf_counter()
                api.api("GET", f"/nodes/{node}/lxc/{vmid}/config")
                middle = time.perf_counter()
                api.api("PUT", f"/nodes/{node}/lxc/{vmid}/config", memory=512 + 16 * round_number)
                end = time.perf_counter()
                with lock:
                    latencies.extend([middle - begin, end - middle])

        double.control("POST", "flush")
        writes_before = double.control("POST", "flush")["writes"]
        started = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(read_and_update, targets))
        load_s = time.perf_counter() - started
        writes = double.control("POST", "flush")["writes"] - writes_before

        flush_started = time.perf_counter()
        double.control("POST", "flush")
        flush_s = time.perf_counter() - flush_started
        state_bytes = (double.state_dir / "state.json").stat().st_size
        double.stop()

    return {
        "stores": stores,
        "nodes": stores * 3,
        "containers": len(targets),
        "clients": clients,
        "persist_interval_s": persist_interval_s,
        "create_per_s": round(len(targets) / create_s, 1),
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / load_s, 1),
        "latency_ms_p50": round(statistics.median(latencies) * 1000, 2),
        "latency_ms_p95": round(percentile(latencies, 0.95) * 1000, 2),
        "latency_ms_max": round(max(latencies) * 1000, 2),
        "state_writes_during_load": writes,
        "state_file_kib": round(state_bytes / 1024, 1),
        "flush_request_ms": round(flush_s * 1000, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", type=int, default=200)
    parser.add_argument("--containers", type=int, default=5, help="containers per store")
    parser.add_argument("--clients", type=int, default=8, help="parallel API clients")
    parser.add_argument("--rounds", type=int, default=3, help="read+update rounds per container")
    parser.add_argument(
        "--persist-interval", type=float, default=0.05, help="seconds between state file writes (0: after every change)"
    )
    args = parser.parse_args()
    result = run(args.stores, args.containers, args.clients, args.rounds, args.persist_interval)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
