"""The golden Debian container that every lab instance is a snapshot clone of.

Built once with LXC's debian template (debootstrap from the host's Debian mirror), then booted on the
lab bridge to install python3, sudo and python3-apt through the apt proxy and to add the admin user
with the lab's SSH key. A stamp records the recipe, so a changed recipe rebuilds it and an unchanged
one is reused.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from . import aptproxy, containers
from ._proc import LOG, LabError, run, write_text
from .settings import LabSettings

STAMP_NAME = "retail-edge-golden.json"
PACKAGES = ("python3", "python3-apt", "sudo", "openssh-server", "systemd-sysv", "dbus", "ca-certificates")

# Only loopback: the lab address is set by LXC before init runs, so ifupdown must not touch eth0 and
# the template's DHCP client must not make boot wait for a lease that never comes.
INTERFACES = """# Written by python -m lab.lxc: LXC sets eth0's static address before init starts.
auto lo
iface lo inet loopback
"""

JOURNALD = """# Written by python -m lab.lxc: keep the journal in memory and small (containers idle at about 15 MiB).
[Journal]
Storage=volatile
RuntimeMaxUse=16M
"""

SSHD = """# Written by python -m lab.lxc: key logins only; skip reverse DNS, since the lab has no resolver.
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
"""


def ensure_ssh_key(settings: LabSettings) -> Path:
    """Generate the lab's ed25519 key pair once; return the private key path."""
    key = settings.ssh_key
    if not key.is_file():
        key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "retail-edge-lab", "-f", key])
    return key


def apt_conf(settings: LabSettings, port: int) -> str:
    """Return the containers' apt configuration: the proxy on the host, no recommends.

    Check-Valid-Until is off because the host's mirror may serve a dated snapshot whose Release files have
    expired, as the host's own apt configuration allows.
    """
    return (
        "// Written by python -m lab.lxc: fetch packages through the lab's apt-cacher-ng on the host.\n"
        f'Acquire::http::Proxy "http://{settings.host_address}:{port}";\n'
        'Acquire::https::Proxy "DIRECT";\n'
        'Acquire::Check-Valid-Until "false";\n'
        'APT::Install-Recommends "false";\n'
    )


def recipe(settings: LabSettings) -> dict[str, str]:
    """Return what the golden container is built from; any change makes ensure_golden rebuild it."""
    source = Path(__file__).read_bytes() + Path(containers.__file__).read_bytes()
    return {
        "release": settings.release,
        "packages": " ".join(PACKAGES),
        "admin_user": settings.admin_user,
        "public_key": settings.ssh_key.with_suffix(".pub").read_text().strip(),
        "sources": settings.host_apt_sources.read_text(),
        "code": hashlib.sha256(source).hexdigest(),
    }


def stamp_path(settings: LabSettings) -> Path:
    return settings.lxcpath / settings.golden_name / STAMP_NAME


def is_current(settings: LabSettings) -> bool:
    path = stamp_path(settings)
    if not path.is_file() or not containers.exists(settings, settings.golden_name):
        return False
    return json.loads(path.read_text()) == recipe(settings)


def ensure_golden(settings: LabSettings) -> bool:
    """Build the golden container unless an up-to-date one exists; return whether it was built.

    Needs the bridge and the apt proxy (see ensure_bridge and ensure_proxy).
    """
    ensure_ssh_key(settings)
    if is_current(settings):
        return False

    name = settings.golden_name
    started = time.monotonic()
    if containers.exists(settings, name):
        LOG.info("golden container %s is out of date; rebuilding", name)
        containers.destroy(settings, name)

    _create_rootfs(settings)
    rootfs = settings.lxcpath / name / "rootfs"
    _write_base_files(settings, rootfs, aptproxy.proxy_port(settings))

    containers.start(settings, name)
    try:
        containers.wait_booted(settings, name, timeout=120)
        containers.attach(settings, name, _install_script(settings), timeout=900)
    finally:
        containers.stop(settings, name)

    write_text(stamp_path(settings), json.dumps(recipe(settings), indent=2) + "\n")
    LOG.info("golden container %s built in %.0f s", name, time.monotonic() - started)
    return True


def _create_rootfs(settings: LabSettings) -> None:
    """Run lxc-create with the debian template; debootstrap's result is cached in the lab directory."""
    sources = aptproxy.read_host_sources(settings.host_apt_sources)
    mirror = aptproxy.archive_mirror(sources, settings.release)
    base_config = settings.lab_dir / "golden-create.conf"
    write_text(base_config, "\n".join(containers.network_lines(settings, settings.golden_host_number)) + "\n")
    settings.lxcpath.mkdir(parents=True, exist_ok=True)
    settings.debootstrap_cache.mkdir(parents=True, exist_ok=True)
    proc = run(
        [
            "lxc-create",
            "-P",
            settings.lxcpath,
            "-n",
            settings.golden_name,
            "-f",
            base_config,
            "-t",
            "debian",
            "--",
            "-r",
            settings.release,
            "--mirror",
            mirror,
        ],
        env={"LXC_CACHE_PATH": str(settings.debootstrap_cache)},
        timeout=1800,
        check=False,
    )
    if proc.returncode != 0:
        run(["lxc-destroy", "-P", settings.lxcpath, "-n", settings.golden_name], check=False)
        raise LabError(
            f"lxc-create of {settings.golden_name} from {mirror} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        )
    containers.set_network(settings, settings.golden_name, settings.golden_host_number)


def _write_base_files(settings: LabSettings, rootfs: Path, port: int) -> None:
    sources = aptproxy.read_host_sources(settings.host_apt_sources)
    (rootfs / "etc/apt/sources.list").unlink(missing_ok=True)
    write_text(rootfs / "etc/apt/sources.list.d/debian.sources", aptproxy.render_sources(sources))
    write_text(rootfs / "etc/apt/apt.conf.d/80retail-edge-lab", apt_conf(settings, port))
    write_text(rootfs / "etc/network/interfaces", INTERFACES)
    write_text(rootfs / "etc/systemd/journald.conf.d/retail-edge-lab.conf", JOURNALD)
    write_text(rootfs / "etc/ssh/sshd_config.d/retail-edge-lab.conf", SSHD)


def _install_script(settings: LabSettings) -> str:
    user = settings.admin_user
    public_key = settings.ssh_key.with_suffix(".pub").read_text().strip()
    return f"""
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends {" ".join(PACKAGES)}
apt-get purge -y -q isc-dhcp-client isc-dhcp-common || true
id -u {user} >/dev/null 2>&1 || useradd --create-home --shell /bin/bash {user}
printf '%s\\n' '{user} ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/{user}
chmod 0440 /etc/sudoers.d/{user}
visudo -cf /etc/sudoers.d/{user}
install -d -m 0700 -o {user} -g {user} /home/{user}/.ssh
printf '%s\\n' '{public_key}' > /home/{user}/.ssh/authorized_keys
chown {user}:{user} /home/{user}/.ssh/authorized_keys
chmod 0600 /home/{user}/.ssh/authorized_keys
systemctl enable ssh
apt-get clean
"""
