"""A backend that runs every container of the double as a real LXC container on the lab bridge.

Selected with `backend: lxc` in the lab configuration. A create clones the lab's golden Debian 12
container (an overlay snapshot, about a second) under the LXC lab's container directory, so the lab's
address leases and `python -m lab.lxc down` see it. Before every start the container's LXC config is
rendered from its PVE config (`lxc_render`): hostname, static addresses on the lab bridge with MACs
derived from them, memory/swap/cores/cpulimit/cpuunits as cgroup limits, mount points as bind mounts,
`dev[n]` as device nodes. Start, stop and destroy run lxc-start, lxc-stop and lxc-destroy, and
`status/current` reads the real state, init PID, uptime and memory use.

Volume bookkeeping (sizes, storage usage, template and clone names) stays the memory backend's; a
mount point's volume is also a directory under `<lab dir>/pve-volumes/`.

Backend options (`backend_options:` in the lab configuration):

- `lab_dir`: the LXC lab directory (default: `RETAIL_EDGE_LAB_DIR`, else `<repo>/.lab`).
- `name_prefix`: LXC container names are `<name_prefix><vmid>` (default `pve-`).
- `golden_name`: the golden container to clone (default: the LXC lab's).
- `templates`: file name patterns of the `ostemplate`s that map to the golden image
  (default `["debian-12-*"]`); any other template fails the create.

Known differences from a PVE node: containers run privileged for any value of `unprivileged` (the lab
has no ID maps), `hwaddr` in `net[n]` is replaced by the address-derived MAC, `gw` is ignored, volume
sizes are not enforced, mount points and devices added to a running container appear at its next
start, and clones and restores have no LXC container of their own.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
import re
import shutil
import subprocess
import uuid
from collections.abc import Sequence
from ipaddress import IPv4Interface
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.lxc import LabError, LabSettings, aptproxy, containers, golden, instances
from lab.lxc._proc import write_text
from lab.lxc.network import mac_for
from lab.pve.backends import lxc_render
from lab.pve.backends.base import BackendError, RuntimeStatus
from lab.pve.backends.memory import MemoryBackend

if TYPE_CHECKING:
    from lab.pve.app import PveApp

LOG = logging.getLogger("lab.pve.lxc")
OPTIONS = frozenset({"lab_dir", "name_prefix", "golden_name", "templates"})
PREFIX_RE = re.compile(r"[a-z][a-z0-9-]{0,40}")
LIMIT_KEYS = frozenset({"memory", "swap", "cores", "cpulimit", "cpuunits"})
CLOCK_TICKS = 100  # USER_HZ on Linux, the unit of /proc/<pid>/stat start times


class LxcBackend(MemoryBackend):
    name = "lxc"

    def __init__(self, app: PveApp, options: dict[str, Any]) -> None:
        super().__init__(app, options)
        unknown = set(options) - OPTIONS
        if unknown:
            raise ValueError(f"unknown lxc backend options {sorted(unknown)}; valid: {sorted(OPTIONS)}")
        settings = LabSettings.from_env()
        if "lab_dir" in options:
            settings = dataclasses.replace(settings, lab_dir=Path(options["lab_dir"]).resolve())
        if "golden_name" in options:
            settings = dataclasses.replace(settings, golden_name=str(options["golden_name"]))
        self.settings = settings
        self.prefix = str(options.get("name_prefix", "pve-"))
        if not PREFIX_RE.fullmatch(self.prefix):
            raise ValueError(
                f"lxc backend option name_prefix {self.prefix!r} is invalid: use lower-case letters, "
                "digits and '-', starting with a letter, such as 'store1-'"
            )
        self.templates = tuple(str(pattern) for pattern in options.get("templates", ["debian-12-*"]))
        self.host = lxc_render.HostLimits.detect()

    # Names and paths

    def container_name(self, vmid: int) -> str:
        return f"{self.prefix}{vmid}"

    def volume_path(self, volid: str) -> Path:
        """Return the host directory that stands for a volume such as `local-lvm:vm-202-disk-1`."""
        storage, _, volname = volid.partition(":")
        return self.settings.lab_dir / "pve-volumes" / storage / volname

    def _context(self, name: str) -> lxc_render.RenderContext:
        settings = self.settings
        return lxc_render.RenderContext(
            bridge=settings.bridge,
            network=settings.host_interface.network,
            reserved=frozenset({settings.host_address, settings.golden_address}),
            volume_path=self.volume_path,
            mac_for=mac_for,
            host=self.host,
            hook_path=settings.lxcpath / name / "pve-autodev.sh",
        )

    def _render(self, vmid: int, conf: dict[str, Any]) -> lxc_render.RenderedContainer:
        return lxc_render.render(vmid, conf, self._context(self.container_name(vmid)))

    # Volumes: the memory backend's records, plus a directory per mount point volume

    def free_volume(self, node: str, volid: str) -> None:
        super().free_volume(node, volid)
        path = self.volume_path(volid)
        if path.is_dir():
            shutil.rmtree(path)

    # Containers

    def create_container(self, node: str, vmid: int, conf: dict[str, Any], ostemplate: str) -> None:
        del node
        name = self.container_name(vmid)
        self._check_template(ostemplate)
        self._check_golden()
        rendered = self._render(vmid, conf)  # rejects an unusable net[n] before anything is cloned
        if containers.exists(self.settings, name):
            LOG.warning("removing LXC container %s left over from an earlier CT %d", name, vmid)
            self._destroy_real(name)
        self._reserve_addresses(name, rendered.addresses)
        try:
            _run(
                [
                    "lxc-copy",
                    "-P",
                    self.settings.lxcpath,
                    "-n",
                    self.settings.golden_name,
                    "-N",
                    name,
                    "-s",
                    "-B",
                    "overlay",
                ]
            )
            upper = self._upper_dir(name)
            # Each clone gets its own machine-id; an empty one would make systemd run first-boot presets.
            write_text(upper / "etc/machine-id", f"{uuid.uuid4().hex}\n", mode=0o444)
            port = aptproxy.proxy_port(self.settings)
            write_text(upper / "etc/apt/apt.conf.d/80retail-edge-lab", golden.apt_conf(self.settings, port))
            self._write_lxc_config(name, rendered)
        except (LabError, OSError, BackendError) as exc:
            self._destroy_real(name)
            raise BackendError(f"cloning the golden container into {name} failed: {exc}") from exc
        LOG.info("CT %d: LXC container %s cloned from %s", vmid, name, self.settings.golden_name)

    def start(self, node: str, vmid: int, conf: dict[str, Any]) -> None:
        del node
        name = self._require_container(vmid)
        rendered = self._render(vmid, conf)
        self._reserve_addresses(name, rendered.addresses)
        for directory in rendered.volume_dirs:
            directory.mkdir(parents=True, exist_ok=True)
        hook = self.settings.lxcpath / name / "pve-autodev.sh"
        if rendered.devices:
            write_text(hook, lxc_render.autodev_hook(rendered.devices), mode=0o755)
        else:
            hook.unlink(missing_ok=True)
        self._write_lxc_config(name, rendered)
        self._write_guest_files(name, rendered)
        try:
            containers.start(self.settings, name)
        except LabError as exc:
            log = self.settings.lxcpath / name / "start.log"
            tail = log.read_text()[-1500:] if log.is_file() else "(no start.log)"
            raise BackendError(f"startup for container '{vmid}' failed: {exc}\n{tail}") from exc
        LOG.info(
            "CT %d: LXC container %s started (%s)",
            vmid,
            name,
            ", ".join(str(address) for address in rendered.addresses) or "no network",
        )

    def stop(self, node: str, vmid: int) -> None:
        del node
        name = self.container_name(vmid)
        if not containers.exists(self.settings, name):
            LOG.warning("CT %d: no LXC container %s to stop", vmid, name)
            return
        try:
            containers.stop(self.settings, name)
        except LabError as exc:
            raise BackendError(f"stopping container '{vmid}' failed: {exc}") from exc

    def destroy(self, node: str, vmid: int) -> None:
        super().destroy(node, vmid)
        self._destroy_real(self.container_name(vmid))

    def status(self, node: str, vmid: int) -> RuntimeStatus:
        del node
        name = self.container_name(vmid)
        if not containers.exists(self.settings, name):
            return RuntimeStatus(running=False)
        proc = subprocess.run(
            ["lxc-info", "-P", str(self.settings.lxcpath), "-n", name, "-s", "-p", "-H"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        # lxc-info prints "State: RUNNING" and "PID: 123" (it ignores -H when given two fields).
        fields = [line.rpartition(":")[2].strip() for line in proc.stdout.splitlines()]
        if len(fields) < 2 or fields[0] != "RUNNING" or not fields[1].isdigit():
            return RuntimeStatus(running=False)
        pid = int(fields[1])
        return RuntimeStatus(running=True, uptime=_uptime(pid), pid=pid, mem=_memory_used(pid, self.host))

    def apply_live(self, node: str, vmid: int, conf: dict[str, Any], keys: list[str]) -> None:
        """Apply hot-plugged changes to the running container.

        Limits go to its cgroup, a new hostname into its files, and a new address onto its interface.
        New mount points and devices take effect at the next start, when the LXC config is rendered again.
        Failures are logged and not raised: the double has already stored the change, and the next
        start renders it in full.
        """
        name = self.container_name(vmid)
        if not self.status(node, vmid).running:
            return
        try:
            if LIMIT_KEYS.intersection(keys):
                self._apply_limits(name, conf, deleted_cores="cores" in keys and "cores" not in conf)
            if "hostname" in keys:
                self._apply_hostname(name, str(conf.get("hostname") or f"CT{vmid}"), self._render(vmid, conf))
            if any(key.startswith("net") for key in keys):
                self._apply_addresses(name, vmid, conf)
        except (LabError, BackendError, OSError) as exc:
            LOG.warning(
                "CT %d: live change of %s not applied to %s (it applies at the next start): %s",
                vmid,
                ",".join(keys),
                name,
                exc,
            )

    # Helpers

    def _check_template(self, ostemplate: str) -> None:
        file_name = ostemplate.rsplit("/", 1)[-1]
        if not any(fnmatch.fnmatch(file_name, pattern) for pattern in self.templates):
            raise BackendError(
                f"template '{ostemplate}' is not available in the lab: the lxc backend builds containers from "
                f"its golden Debian 12 image, for templates matching {list(self.templates)}"
            )

    def _check_golden(self) -> None:
        stamp = golden.stamp_path(self.settings)
        if not containers.exists(self.settings, self.settings.golden_name) or not stamp.is_file():
            raise BackendError(
                f"golden container {self.settings.golden_name} not found in {self.settings.lxcpath}; "
                "build the lab first with 'python -m lab.lxc up'"
            )

    def _require_container(self, vmid: int) -> str:
        name = self.container_name(vmid)
        if not containers.exists(self.settings, name):
            raise BackendError(
                f"CT {vmid} has no LXC container {name} in {self.settings.lxcpath}: the lxc backend makes one "
                "when it creates a CT from a template (clones and restores have none); destroy and recreate the CT"
            )
        return name

    def _destroy_real(self, name: str) -> None:
        try:
            containers.destroy(self.settings, name)
        except LabError as exc:
            raise BackendError(f"removing LXC container {name} failed: {exc}") from exc
        finally:
            instances.release_address(self.settings, name)

    def _upper_dir(self, name: str) -> Path:
        """Return the overlay's upper directory: files written there appear inside the (stopped) container."""
        for line in containers.config_path(self.settings, name).read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "lxc.rootfs.path" and value.strip().startswith("overlay:"):
                return Path(value.strip().rsplit(":", 1)[1])
        raise BackendError(f"LXC container {name} is not an overlay clone of the golden container")

    def _write_lxc_config(self, name: str, rendered: lxc_render.RenderedContainer) -> None:
        path = containers.config_path(self.settings, name)
        write_text(path, lxc_render.merge_config(path.read_text(), rendered))

    def _write_guest_files(self, name: str, rendered: lxc_render.RenderedContainer) -> None:
        """Write hostname, PVE's /etc/hosts block and resolv.conf into the stopped container, as PVE does at start."""
        upper = self._upper_dir(name)
        lower = self.settings.lxcpath / self.settings.golden_name / "rootfs"
        write_text(upper / "etc/hostname", f"{rendered.hostname}\n")
        hosts_path = upper / "etc/hosts" if (upper / "etc/hosts").is_file() else lower / "etc/hosts"
        existing = hosts_path.read_text() if hosts_path.is_file() else "127.0.0.1 localhost\n"
        write_text(upper / "etc/hosts", lxc_render.merge_hosts(existing, rendered.hostname, rendered.addresses))
        resolv = lxc_render.resolv_conf(rendered.nameserver, rendered.searchdomain)
        if resolv is not None:
            (upper / "etc/resolv.conf").unlink(missing_ok=True)  # may be a symlink into /run
            write_text(upper / "etc/resolv.conf", resolv)

    def _reserve_addresses(self, name: str, addresses: Sequence[IPv4Interface]) -> None:
        """Lease exactly the addresses a PVE container declares, in the lease directory every lab on the host shares."""
        try:
            instances.reserve_addresses(self.settings, name, [address.ip for address in addresses])
        except LabError as exc:
            raise BackendError(f"{exc}; the address comes from ip= in the container's net[n] entry") from exc

    def _apply_limits(self, name: str, conf: dict[str, Any], *, deleted_cores: bool) -> None:
        values = lxc_render.cgroup_values(conf, self.host)
        if deleted_cores:
            values["cpuset.cpus"] = lxc_render.cpu_range(self.host.cpus)
        memory_keys = [key for key in values if key.startswith("memory.")]
        if not self.host.cgroup2 and len(memory_keys) == 2:
            # memsw must stay >= limit at every step: grow memsw first, shrink the limit first.
            current = int(self._cgroup_get(name, "memory.limit_in_bytes"))
            if int(values["memory.limit_in_bytes"]) > current:
                memory_keys.reverse()
        for key in [*memory_keys, *(key for key in values if not key.startswith("memory."))]:
            _run(["lxc-cgroup", "-P", self.settings.lxcpath, "-n", name, key, values[key]])

    def _cgroup_get(self, name: str, key: str) -> str:
        return _run(["lxc-cgroup", "-P", self.settings.lxcpath, "-n", name, key]).strip()

    def _apply_hostname(self, name: str, hostname: str, rendered: lxc_render.RenderedContainer) -> None:
        hosts = containers.attach(self.settings, name, "cat /etc/hosts")
        new_hosts = lxc_render.merge_hosts(hosts, hostname, rendered.addresses)
        script = (
            f"printf '%s\\n' {_quote(hostname)} > /etc/hostname\n"
            f"printf '%s' {_quote(new_hosts)} > /etc/hosts\n"
            f"hostname {_quote(hostname)}\n"
        )
        containers.attach(self.settings, name, script)

    def _apply_addresses(self, name: str, vmid: int, conf: dict[str, Any]) -> None:
        """Put each interface's declared address on it; the MAC follows at the next start."""
        rendered = self._render(vmid, conf)
        self._reserve_addresses(name, rendered.addresses)
        lines = [line for line in rendered.lines if ".ipv4.address = " in line or ".name = " in line]
        names = {line.split(".")[2]: line.split("= ", 1)[1] for line in lines if ".name = " in line}
        script = []
        for line in lines:
            if ".ipv4.address = " not in line:
                continue
            index, address = line.split(".")[2], line.split("= ", 1)[1]
            interface = names[index]
            script.append(f"ip -4 addr flush dev {interface} && ip addr add {address} dev {interface}")
        if script:
            containers.attach(self.settings, name, "\n".join(script))


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def _run(argv: Sequence[str | Path], timeout: float = 120) -> str:
    try:
        proc = subprocess.run(
            [str(part) for part in argv], capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BackendError(f"{argv[0]} timed out after {timeout:.0f} s") from exc
    if proc.returncode != 0:
        raise BackendError(f"{' '.join(str(part) for part in argv)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def _uptime(pid: int) -> int:
    """Return the seconds since the container's init started, from /proc."""
    try:
        start_ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        system_uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0
    return max(0, int(system_uptime - start_ticks / CLOCK_TICKS))


def _memory_used(pid: int, host: lxc_render.HostLimits) -> int:
    """Return the container's memory use in bytes, from the cgroup its init process runs in."""
    try:
        cgroups = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return 0
    for line in cgroups:
        _, controllers, path = line.split(":", 2)
        if host.cgroup2 and controllers == "":
            usage = Path("/sys/fs/cgroup", path.lstrip("/"), "memory.current")
        elif "memory" in controllers.split(","):
            usage = Path("/sys/fs/cgroup/memory", path.lstrip("/"), "memory.usage_in_bytes")
        else:
            continue
        try:
            return int(usage.read_text())
        except (OSError, ValueError):
            return 0
    return 0
