"""Serve many store clusters from one PVE double process: one HTTPS port and one cluster state per store.

Every store of the fleet is its own Proxmox VE cluster, so container ids repeat from store to store
(vmid 201 is the Varnish container in every store). A fleet test therefore needs one API endpoint per
store. Hundreds of double processes would cost hundreds of interpreters, so this module runs one
`PveApp` per store inside a single process. Each has its own port, state file, tasks and counters,
and one accept loop serves all of their sockets.

    python -m lab.pve.fleet --config base.yml --clusters clusters.yml --state-dir DIR

`base.yml` is a lab configuration (see docs/pve-double.md) shared by every cluster; `clusters.yml`
maps cluster names to the keys that differ, at least `nodes`:

    clusters:
      s001: {nodes: [s001-pve1, s001-pve2, s001-pve3]}
      s002: {nodes: [s002-pve1, s002-pve2]}

In DIR the process writes `ca.pem` (one CA for all clusters), `ports.json` (cluster name -> port),
`pid`, and `ready` once every port accepts connections. Each cluster's state lives in
`DIR/clusters/NAME/state.json`, next to a copy of the CA and a `port` file, so that
`FleetDouble.cluster(NAME)` can talk to it with the ordinary `PveDouble` client.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from lab.pve.app import PveApp
from lab.pve.config import ConfigError, parse_config
from lab.pve.server import PveHttpServer
from lab.pve.state import StateStore
from lab.pve.testing import PveDouble
from lab.pve.tls import ensure_certificates

LOG = logging.getLogger("lab.pve.fleet")
ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 120.0


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def cluster_configs(base: Mapping[str, Any], clusters: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Return each cluster's full lab configuration: the base with the cluster's own keys over it."""
    if not clusters:
        raise ConfigError("'clusters' must map at least one cluster name to its settings, such as {nodes: [...]}")
    configs = {}
    for name, overrides in clusters.items():
        if not isinstance(overrides, Mapping) or not overrides.get("nodes"):
            raise ConfigError(f"cluster {name!r} needs 'nodes', a non-empty list of node names")
        config = copy.deepcopy(dict(base))
        config.update(copy.deepcopy(dict(overrides)))
        config.setdefault("cluster", str(name))
        configs[str(name)] = config
    return configs


class FleetServer:
    """The clusters of one process: their apps, HTTPS servers and the accept loop shared by all."""

    def __init__(self, configs: Mapping[str, Mapping[str, Any]], state_dir: Path) -> None:
        self.state_dir = state_dir
        all_nodes = sorted({node for config in configs.values() for node in config["nodes"]})
        ca_path, cert_path, key_path = ensure_certificates(state_dir, all_nodes)
        self.ca_path = ca_path
        self.apps: dict[str, PveApp] = {}
        self.servers: dict[str, PveHttpServer] = {}
        for name, raw in configs.items():
            cluster_dir = state_dir / "clusters" / name
            cluster_dir.mkdir(parents=True, exist_ok=True)
            config = parse_config(dict(raw))
            app = PveApp(config, StateStore(cluster_dir / "state.json", config.persist_interval_s))
            server = PveHttpServer(app, 0, cert_path, key_path)
            self.apps[name] = app
            self.servers[name] = server
            (cluster_dir / "lab.yml").write_text(yaml.safe_dump(dict(raw), sort_keys=False))
            shutil.copyfile(ca_path, cluster_dir / "ca.pem")
            _write_atomic(cluster_dir / "port", f"{server.server_address[1]}\n")
        self._stop = threading.Event()

    @property
    def ports(self) -> dict[str, int]:
        return {name: int(server.server_address[1]) for name, server in self.servers.items()}

    def serve(self) -> None:
        """Accept connections on every cluster's socket in one loop; each request gets its own thread."""
        with selectors.DefaultSelector() as selector:
            for server in self.servers.values():
                selector.register(server, selectors.EVENT_READ)
            while not self._stop.is_set():
                for key, _ in selector.select(timeout=0.2):
                    # The same step serve_forever() takes for a readable socket: accept, then start a
                    # handler thread (ThreadingMixIn), so one slow TLS handshake does not delay other clients.
                    key.fileobj._handle_request_noblock()

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        for server in self.servers.values():
            server.server_close()
        for app in self.apps.values():
            app.shutdown()


def serve(config_path: Path, clusters_path: Path, state_dir: Path) -> int:
    try:
        base = yaml.safe_load(config_path.read_text()) or {}
        clusters = (yaml.safe_load(clusters_path.read_text()) or {}).get("clusters") or {}
        fleet = FleetServer(cluster_configs(base, clusters), state_dir)
    except (ConfigError, OSError, yaml.YAMLError) as exc:
        LOG.error("invalid fleet configuration (%s, %s): %s", config_path, clusters_path, exc)
        return 2

    def stop(signum: int, frame: object) -> None:
        del frame
        LOG.info("received signal %d, stopping", signum)
        fleet.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    _write_atomic(state_dir / "pid", f"{os.getpid()}\n")
    _write_atomic(state_dir / "ports.json", json.dumps(fleet.ports, indent=1, sort_keys=True) + "\n")
    _write_atomic(state_dir / "ready", f"{len(fleet.servers)} clusters\n")
    LOG.info("PVE double serving %d clusters on 127.0.0.1 (CA %s)", len(fleet.servers), fleet.ca_path)
    try:
        fleet.serve()
    finally:
        (state_dir / "ready").unlink(missing_ok=True)
        fleet.close()
        LOG.info("PVE double stopped; cluster states are under %s", state_dir / "clusters")
    return 0


class FleetDouble:
    """Run `python -m lab.pve.fleet` as a subprocess; `cluster(name)` returns a client for one store's cluster."""

    def __init__(self, state_dir: Path, base_config: Mapping[str, Any], clusters: Mapping[str, Mapping[str, Any]]):
        self.state_dir = state_dir
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.configs = cluster_configs(base_config, clusters)
        self.config_path = state_dir / "base.yml"
        self.clusters_path = state_dir / "clusters.yml"
        self.config_path.write_text(yaml.safe_dump(dict(base_config), sort_keys=False))
        self.clusters_path.write_text(yaml.safe_dump({"clusters": dict(clusters)}, sort_keys=False))
        self.ports: dict[str, int] = {}
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def ca_file(self) -> Path:
        return self.state_dir / "ca.pem"

    def start(self) -> FleetDouble:
        if self._process is not None:
            return self
        (self.state_dir / "ready").unlink(missing_ok=True)
        command = [
            sys.executable,
            "-m",
            "lab.pve.fleet",
            "--config",
            str(self.config_path),
            "--clusters",
            str(self.clusters_path),
            "--state-dir",
            str(self.state_dir),
        ]
        with (self.state_dir / "double.log").open("ab") as log:
            self._process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (self.state_dir / "ready").exists():
            if self._process.poll() is not None:
                log_text = (self.state_dir / "double.log").read_text()[-4000:]
                self._process = None
                raise RuntimeError(f"the fleet PVE double exited during start-up:\n{log_text}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the fleet PVE double did not get ready in {START_TIMEOUT_S} s")
            time.sleep(0.05)
        self.ports = {name: int(port) for name, port in json.loads((self.state_dir / "ports.json").read_text()).items()}
        return self

    def stop(self) -> None:
        """Stop the process with SIGTERM, so that every cluster writes its state, and wait for it."""
        process, self._process = self._process, None
        if process is None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def cluster(self, name: str) -> PveDouble:
        """Return a `PveDouble` client (api, control, stats, faults) for one cluster; it does not own the process."""
        if name not in self.ports:
            raise KeyError(f"cluster {name!r} is not served; known: {sorted(self.ports)[:5]}...")
        return PveDouble(self.state_dir / "clusters" / name, self.configs[name], port=self.ports[name])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.pve.fleet", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True, help="lab configuration shared by every cluster")
    parser.add_argument("--clusters", type=Path, required=True, help="YAML with 'clusters': name -> overrides")
    parser.add_argument("--state-dir", type=Path, required=True, help="directory for CA, ports.json and states")
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args.state_dir.mkdir(parents=True, exist_ok=True)
    return serve(args.config, args.clusters, args.state_dir)


if __name__ == "__main__":
    sys.exit(main())
