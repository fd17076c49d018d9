"""Settings of the LXC lab: where it keeps its files and which addresses it uses."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# 198.51.100.0/24 is TEST-NET-2 (RFC 5737): documentation only, so it collides with nothing real.
DEFAULT_HOST_INTERFACE = IPv4Interface("198.51.100.1/24")


@dataclass(frozen=True)
class LabSettings:
    """Paths, names and addresses of one lab; every path lives under lab_dir."""

    lab_dir: Path
    bridge: str = "edgelab0"
    host_interface: IPv4Interface = DEFAULT_HOST_INTERFACE
    golden_name: str = "lxcroles-golden"
    golden_host_number: int = 2
    # Instances get host numbers from this range; .1 is the host and .2 the golden container.
    pool_first: int = 10
    pool_last: int = 250
    release: str = "bookworm"
    admin_user: str = "ansible"
    proxy_port: int = 3142
    host_apt_sources: Path = Path("/etc/apt/sources.list.d/debian.sources")
    # Host-wide state tied to the bridge: address leases are shared by every lab on this host.
    run_dir: Path = Path("/run/retail-edge-lab")
    repo_root: Path = field(default=REPO_ROOT)

    @classmethod
    def from_env(cls) -> LabSettings:
        """Build settings from RETAIL_EDGE_LAB_DIR (default: <repo>/.lab)."""
        lab_dir = Path(os.environ.get("RETAIL_EDGE_LAB_DIR", REPO_ROOT / ".lab")).resolve()
        return cls(lab_dir=lab_dir)

    @property
    def host_address(self) -> IPv4Address:
        return self.host_interface.ip

    @property
    def golden_address(self) -> IPv4Address:
        return self.address_for(self.golden_host_number)

    def address_for(self, host_number: int) -> IPv4Address:
        """Return the bridge network's address with the given host number."""
        return self.host_interface.network.network_address + host_number

    @property
    def lxcpath(self) -> Path:
        """LXC's container directory (lxc-* -P) of this lab, separate from /var/lib/lxc."""
        return self.lab_dir / "containers"

    @property
    def debootstrap_cache(self) -> Path:
        """LXC_CACHE_PATH for the debian template: the debootstrap result is reused from here."""
        return self.lab_dir / "cache" / "lxc"

    @property
    def proxy_dir(self) -> Path:
        return self.lab_dir / "apt-cacher-ng"

    @property
    def ssh_key(self) -> Path:
        """Private key that the lab's admin user accepts; the public half is next to it (.pub)."""
        return self.lab_dir / "ssh" / "id_ed25519"

    @property
    def wheelhouse(self) -> Path:
        return self.lab_dir / "wheelhouse"

    @property
    def lock_file(self) -> Path:
        return self.lab_dir / ".lock"

    @property
    def leases_dir(self) -> Path:
        return self.run_dir / self.bridge / "leases"
