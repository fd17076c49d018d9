"""Lab instances: overlay snapshot clones of the golden container with a leased static address."""

from __future__ import annotations

import json
import re
import socket
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from ipaddress import IPv4Address
from pathlib import Path

from . import aptproxy, containers, golden
from ._proc import LOG, LabError, file_lock, run, write_text
from .network import mac_for
from .settings import LabSettings

# Container names double as host names, so they follow RFC 1123 labels.
NAME_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class Instance:
    """A running lab container as an SSH client (and molecule's instance config) needs it."""

    instance: str
    address: str
    user: str
    identity_file: str
    port: int = 22
    mac: str = ""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def instance_config(self) -> dict[str, object]:
        """Return the entry molecule's default driver reads from instance_config.yml."""
        return {key: value for key, value in asdict(self).items() if key != "mac"}


def _lease_owner(settings: LabSettings, name: str) -> dict[str, str]:
    return {"lab_dir": str(settings.lab_dir), "name": name}


def _lease_is_stale(owner: dict[str, str]) -> bool:
    return not (Path(owner["lab_dir"]) / "containers" / owner["name"] / "config").is_file()


def lease_address(settings: LabSettings, name: str) -> IPv4Address:
    """Return the address leased to name, leasing a free one first when it has none.

    Leases live under /run, next to the bridge they belong to, so two labs on one host (two checkouts)
    never give the same address to two containers on the shared bridge.
    """
    leases = settings.leases_dir
    leases.mkdir(parents=True, exist_ok=True)
    wanted = _lease_owner(settings, name)
    with file_lock(leases.parent / "leases.lock"):
        free: list[IPv4Address] = []
        for number in range(settings.pool_first, settings.pool_last + 1):
            address = settings.address_for(number)
            path = leases / str(address)
            if not path.exists():
                free.append(address)
                continue
            owner = json.loads(path.read_text())
            if owner == wanted:
                return address
            if _lease_is_stale(owner):
                path.unlink()
                free.append(address)
        if not free:
            raise LabError(f"no free address left in {leases}; destroy unused lab containers")
        write_text(leases / str(free[0]), json.dumps(wanted) + "\n")
        return free[0]


def reserve_addresses(settings: LabSettings, name: str, addresses: Iterable[IPv4Address]) -> None:
    """Lease exactly these addresses to name, for containers that declare their own addresses.

    Unlike lease_address, which picks a free address from the pool, this takes the given addresses, inside or
    outside the pool. It also drops any other lease that name holds. A lease of a lab container that no longer
    exists is stale and is taken over. Raises LabError, and changes no lease, when a live container of any lab
    on this host holds one of the addresses.
    """
    leases = settings.leases_dir
    leases.mkdir(parents=True, exist_ok=True)
    owner = _lease_owner(settings, name)
    requested = sorted({str(address) for address in addresses})
    with file_lock(leases.parent / "leases.lock"):
        for address in requested:
            path = leases / address
            if not path.exists():
                continue
            current = json.loads(path.read_text())
            if current != owner and not _lease_is_stale(current):
                raise LabError(
                    f"address {address} is in use by lab container {current['name']} ({current['lab_dir']}); "
                    "pick another address or destroy that container"
                )
        for address in requested:
            write_text(leases / address, json.dumps(owner) + "\n")
        for path in leases.iterdir():
            if path.name not in requested and json.loads(path.read_text()) == owner:
                path.unlink()


def release_address(settings: LabSettings, name: str) -> None:
    leases = settings.leases_dir
    if not leases.is_dir():
        return
    wanted = _lease_owner(settings, name)
    with file_lock(leases.parent / "leases.lock"):
        for path in leases.iterdir():
            if json.loads(path.read_text()) == wanted:
                path.unlink()


def _upper_dir(settings: LabSettings, name: str) -> Path:
    """Return the overlay upper directory of a snapshot clone: files written there show inside the container."""
    for line in containers.config_path(settings, name).read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "lxc.rootfs.path":
            kind, _, layers = value.strip().partition(":")
            if kind != "overlay":
                raise LabError(f"container {name} has rootfs {value.strip()}, expected an overlay snapshot clone")
            return Path(layers.rsplit(":", 1)[1])
    raise LabError(f"container {name} has no lxc.rootfs.path in its config")


def _personalize(settings: LabSettings, name: str, address: IPv4Address) -> None:
    """Write the instance's own files into its overlay before its first boot."""
    upper = _upper_dir(settings, name)
    write_text(upper / "etc/hostname", f"{name}\n")
    write_text(
        upper / "etc/hosts",
        f"127.0.0.1 localhost\n127.0.1.1 {name}\n{address} {name}\n{settings.host_address} lab-host\n",
    )
    # Each clone gets its own machine-id; an empty one would make systemd run first-boot presets.
    write_text(upper / "etc/machine-id", f"{uuid.uuid4().hex}\n", mode=0o444)
    write_text(upper / "etc/apt/apt.conf.d/80retail-edge-lab", golden.apt_conf(settings, aptproxy.proxy_port(settings)))


def wait_for_ssh(address: str, port: int = 22, timeout: float = 60) -> None:
    """Wait until sshd on address sends its banner."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address, port), timeout=1) as sock:
                sock.settimeout(2)
                if sock.recv(4).startswith(b"SSH-"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise LabError(f"sshd on {address}:{port} did not answer within {timeout:.0f} s; see the container's start.log")


def create(settings: LabSettings, name: str) -> Instance:
    """Clone, configure and start instance name (reusing it when it exists); return how to reach it."""
    if not NAME_PATTERN.match(name) or name == settings.golden_name:
        raise LabError(f"invalid instance name {name!r}: use lower-case letters, digits and '-' (max 63)")
    address = lease_address(settings, name)
    host_number = int(address) - int(settings.host_interface.network.network_address)

    if not containers.exists(settings, name):
        run(["lxc-copy", "-P", settings.lxcpath, "-n", settings.golden_name, "-N", name, "-s", "-B", "overlay"])
        containers.set_network(settings, name, host_number)
        _personalize(settings, name, address)
        LOG.info("instance %s cloned with address %s", name, address)

    containers.start(settings, name)
    wait_for_ssh(str(address))
    return Instance(
        instance=name,
        address=str(address),
        user=settings.admin_user,
        identity_file=str(settings.ssh_key),
        mac=mac_for(address),
    )


def destroy(settings: LabSettings, name: str) -> bool:
    """Delete instance name and release its address; return whether it existed."""
    if name == settings.golden_name:
        raise LabError(f"{name} is the golden container; remove it with 'python -m lab.lxc down'")
    existed = containers.destroy(settings, name)
    release_address(settings, name)
    return existed
