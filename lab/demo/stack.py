"""The lab's moving parts and how each one is brought up idempotently and taken down.

Every `ensure_*` function starts its part only when it is missing and returns whether it changed
anything, so a second `make demo` reports that nothing changed. Layout under the lab directory:

    containers/, cache/, apt-cacher-ng/, ssh/, wheelhouse/   the LXC lab (lab/lxc)
    ceph/                                                    lab Ceph (lab/ceph)
    openbao/                                                 lab OpenBao (lab/openbao)
    pve/       the PVE double: lab.yml (with the root password, mode 0600), root-password, state, ca.pem, port
    hq/        the lab HQ: its database, `ready` (URL), token-<store> (mode 0600)
    content/   the store content origin (kiosk pages with an ESI promo) served on the lab bridge
    demo/      ports.json, PID files and logs of the processes above, ansible logs, the compliance report
"""

from __future__ import annotations

import json
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lab.ceph.cluster import LabCeph
from lab.demo.processes import BackgroundProcess, DemoError, python_module, wait_for_file
from lab.demo.settings import NODES, STORE_ID, DemoSettings
from lab.lxc import aptproxy, golden, network, wheelhouse
from lab.lxc._proc import file_lock, write_text
from lab.openbao.server import OpenBaoLab

TEMPLATE = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
# The product whose promo the kiosk page includes through ESI (a SKU of the lab HQ's catalog).
PROMO_SKU = "SKU-00001"
# The vision service's camera in the lab: real footage of people walking (Debian's opencv-doc).
CAMERA_FOOTAGE = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")


@dataclass(frozen=True)
class Lab:
    """Paths and processes of one lab, derived from its settings."""

    settings: DemoSettings

    @property
    def root(self) -> Path:
        return self.settings.lab_dir

    @property
    def pve_dir(self) -> Path:
        return self.root / "pve"

    @property
    def hq_dir(self) -> Path:
        return self.root / "hq"

    @property
    def content_dir(self) -> Path:
        return self.root / "content"

    @property
    def demo_dir(self) -> Path:
        return self.settings.demo_dir

    @property
    def ceph(self) -> LabCeph:
        return LabCeph(self.root / "ceph")

    @property
    def openbao(self) -> OpenBaoLab:
        return OpenBaoLab(self.root / "openbao")

    def ports(self) -> dict[str, int]:
        """Return the ports chosen on the first `up` (pve, hq, content); they stay fixed for the lab's life."""
        path = self.demo_dir / "ports.json"
        ports: dict[str, int] = json.loads(path.read_text()) if path.is_file() else {}
        bridge = str(self.settings.lab.host_address)
        wanted = {"pve": "127.0.0.1", "hq": bridge, "content": bridge}
        missing = [name for name in wanted if name not in ports]
        if missing:
            for name in missing:
                ports[name] = _free_port(wanted[name])
            write_text(path, json.dumps(ports, indent=2) + "\n")
        return ports

    def pve_process(self) -> BackgroundProcess:
        return BackgroundProcess(
            name="PVE double",
            argv=python_module(
                "lab.pve",
                "serve",
                "--config",
                str(self.pve_dir / "lab.yml"),
                "--state-dir",
                str(self.pve_dir),
                "--port",
                str(self.ports()["pve"]),
            ),
            pid_file=self.demo_dir / "pve.pid",
            log_file=self.demo_dir / "pve.log",
            marker=str(self.pve_dir),
        )

    def hq_process(self) -> BackgroundProcess:
        return BackgroundProcess(
            name="lab HQ",
            argv=python_module(
                "lab.hq",
                "--host",
                str(self.settings.lab.host_address),
                "--port",
                str(self.ports()["hq"]),
                "--data-dir",
                str(self.hq_dir),
                "--token",
                f"{STORE_ID}={self.hq_token()}",
            ),
            pid_file=self.demo_dir / "hq.pid",
            log_file=self.demo_dir / "hq.log",
            marker=str(self.hq_dir),
        )

    def content_process(self) -> BackgroundProcess:
        return BackgroundProcess(
            name="content origin",
            argv=python_module(
                "http.server",
                str(self.ports()["content"]),
                "--bind",
                str(self.settings.lab.host_address),
                "--directory",
                str(self.content_dir),
            ),
            pid_file=self.demo_dir / "content.pid",
            log_file=self.demo_dir / "content.log",
            marker=str(self.content_dir),
        )

    def hq_token(self) -> str:
        """Return the store's bearer token for HQ, generated once and kept in a root-only file."""
        path = self.hq_dir / f"token-{STORE_ID}"
        if not path.is_file():
            write_text(path, secrets.token_urlsafe(32) + "\n", mode=0o600)
        return path.read_text().strip()

    def pve_root_password(self) -> str:
        path = self.pve_dir / "root-password"
        if not path.is_file():
            write_text(path, secrets.token_urlsafe(24) + "\n", mode=0o600)
        return path.read_text().strip()


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# The LXC lab


def ensure_lxc_lab(lab: Lab) -> bool:
    """Bridge, apt proxy, golden container and the services' wheelhouse, each built only when missing."""
    settings = lab.settings.lab
    with file_lock(settings.lock_file):
        changed = network.ensure_bridge(settings)
        proxy_was_running = aptproxy.running_pid(settings) is not None
        aptproxy.ensure_proxy(settings)
        changed |= not proxy_was_running
        changed |= golden.ensure_golden(settings)
        changed |= wheelhouse.ensure_wheelhouse(settings)
    return changed


# Ceph and OpenBao: their own lab modules are idempotent already


def ensure_ceph(lab: Lab) -> bool:
    return lab.ceph.start()


def ensure_openbao(lab: Lab) -> bool:
    was_running = lab.openbao.running_pid() is not None
    lab.openbao.start()
    return not was_running


def vault_client(lab: Lab) -> Any:
    """Return an hvac client of the lab OpenBao, logged in with its root token."""
    import hvac  # noqa: PLC0415 - only the demo needs the Vault client here

    state = json.loads(lab.openbao.state_file.read_text())
    return hvac.Client(url=state["url"], token=lab.openbao.root_token(), verify=str(lab.openbao.ca_file))


def read_secret(lab: Lab, path: str, field: str) -> str | None:
    """Return one field of kv/<path> from the lab OpenBao, or None when the secret does not exist."""
    import hvac  # noqa: PLC0415

    try:
        answer = vault_client(lab).secrets.kv.v2.read_secret_version(
            path=path, mount_point="kv", raise_on_deleted_version=True
        )
    except hvac.exceptions.InvalidPath:
        return None
    value = answer["data"]["data"].get(field)
    return None if value is None else str(value)


def seed_hq_tokens(lab: Lab) -> bool:
    """Put the store's HQ token where the inventory API, the rules engine and the POS cache read it.

    vault_store_bootstrap generates every missing secret and never overwrites one, so the token that
    the lab HQ accepts must be in place before site.yml runs.
    """
    client = vault_client(lab)
    token = lab.hq_token()
    changed = False
    for workload in ("inventory_api", "rules_engine", "pos_cache"):
        path = f"stores/{STORE_ID}/{workload}/hq"
        if read_secret(lab, path, "token") == token:
            continue
        client.secrets.kv.v2.create_or_update_secret(path=path, secret={"token": token}, mount_point="kv")
        changed = True
    return changed


# Processes of the demo


def pve_config(lab: Lab) -> dict[str, Any]:
    """Return the double's lab configuration: store s001's nodes, the lxc backend and the lab Ceph."""
    return {
        "cluster": f"store-{STORE_ID}",
        "nodes": list(NODES),
        "users": {"root@pam": {"password": lab.pve_root_password()}},
        "storages": {
            "local": {"type": "dir", "content": ["vztmpl", "iso", "backup", "rootdir", "snippets"], "size_gib": 100},
            "local-lvm": {"type": "lvmthin", "content": ["rootdir", "images"], "size_gib": 200},
        },
        "templates": [TEMPLATE],
        "tasks": {"durations": {"default": 0.05}},
        "backend": "lxc",
        "backend_options": {
            "lab_dir": str(lab.root),
            "golden_name": lab.settings.lab.golden_name,
            "name_prefix": lab.settings.name_prefix,
        },
        "extension_settings": {"ceph": {"conf": str(lab.root / "ceph" / "ceph.conf")}},
    }


def ensure_pve_double(lab: Lab) -> bool:
    """Write the double's configuration and start it; a changed configuration restarts it."""
    process = lab.pve_process()
    config_changed = write_text(lab.pve_dir / "lab.yml", yaml.safe_dump(pve_config(lab), sort_keys=False), mode=0o600)
    running = process.pid() is not None
    if running and not config_changed:
        return False
    if running:
        process.stop()
    (lab.pve_dir / "ready").unlink(missing_ok=True)
    process.start()
    wait_for_file(lab.pve_dir / "ready", process, timeout=60)
    return True


def ensure_hq(lab: Lab) -> bool:
    process = lab.hq_process()
    if process.pid() is not None:
        return False
    (lab.hq_dir / "ready").unlink(missing_ok=True)
    process.start()
    wait_for_file(lab.hq_dir / "ready", process, timeout=60)
    return True


def ensure_content(lab: Lab, promo_sku: str = PROMO_SKU) -> bool:
    """Write the store's kiosk pages and assets and serve them on the lab bridge for Varnish to fetch."""
    changed = False
    for relative, text in content_files(promo_sku).items():
        changed |= write_text(lab.content_dir / relative, text)
    process = lab.content_process()
    if process.pid() is not None:
        return changed
    process.start()
    _wait_listening(str(lab.settings.lab.host_address), lab.ports()["content"], process)
    return True


def _wait_listening(host: str, port: int, process: BackgroundProcess, timeout: float = 30) -> None:
    import time  # noqa: PLC0415

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if process.pid() is None:
                raise DemoError(f"{process.name} exited during start-up:\n{process.log_tail()}") from None
            time.sleep(0.1)
    raise DemoError(f"{process.name} does not listen on {host}:{port} after {timeout:.0f} s; see {process.log_file}")


def content_files(promo_sku: str) -> dict[str, str]:
    """Return the kiosk pages of the lab store: HTML with an ESI promo include, a script and an image."""
    page = (
        "<!doctype html>\n<html><head><title>Store s001 kiosk</title>"
        '<script src="/kiosk/app.js"></script></head>\n<body>\n<h1>Welcome to store s001</h1>\n'
        '<img src="/kiosk/logo.svg" alt="logo">\n'
        f'<esi:include src="/promo/fragment?sku={promo_sku}"/>\n</body></html>\n'
    )
    return {
        "index.html": page,
        "kiosk/index.html": page,
        "kiosk/app.js": "document.addEventListener('DOMContentLoaded', () => console.log('kiosk ready'));\n",
        "kiosk/logo.svg": (
            '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><circle cx="32" cy="32" r="30"/></svg>\n'
        ),
    }
