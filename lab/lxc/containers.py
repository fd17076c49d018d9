"""Thin wrappers over the lxc-* tools for containers under the lab's own lxcpath."""

from __future__ import annotations

import time
from pathlib import Path

from ._proc import LabError, run
from .network import mac_for
from .settings import LabSettings

ATTACH_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def config_path(settings: LabSettings, name: str) -> Path:
    return settings.lxcpath / name / "config"


def exists(settings: LabSettings, name: str) -> bool:
    return config_path(settings, name).is_file()


def state(settings: LabSettings, name: str) -> str:
    """Return STOPPED, RUNNING, ... as lxc-info reports it, or ABSENT."""
    if not exists(settings, name):
        return "ABSENT"
    proc = run(["lxc-info", "-P", settings.lxcpath, "-n", name, "-s", "-H"], check=False)
    return proc.stdout.strip() or "ABSENT"


def names(settings: LabSettings) -> list[str]:
    if not settings.lxcpath.is_dir():
        return []
    return sorted(entry.name for entry in settings.lxcpath.iterdir() if (entry / "config").is_file())


def network_lines(settings: LabSettings, host_number: int) -> list[str]:
    """Return the lxc.net.0 lines: a veth on the lab bridge, static address, derived MAC, no gateway."""
    address = settings.address_for(host_number)
    prefix = settings.host_interface.network.prefixlen
    return [
        "lxc.net.0.type = veth",
        f"lxc.net.0.link = {settings.bridge}",
        "lxc.net.0.flags = up",
        "lxc.net.0.name = eth0",
        f"lxc.net.0.hwaddr = {mac_for(address)}",
        f"lxc.net.0.ipv4.address = {address}/{prefix}",
    ]


def set_network(settings: LabSettings, name: str, host_number: int) -> None:
    """Replace the container's network lines with the lab's static ones."""
    path = config_path(settings, name)
    kept = [line for line in path.read_text().splitlines() if not line.strip().startswith("lxc.net.")]
    path.write_text(
        "\n".join(
            [*kept, "", "# Lab network: static address, MAC derived from it", *network_lines(settings, host_number)]
        )
        + "\n"
    )


def start(settings: LabSettings, name: str) -> None:
    if state(settings, name) != "RUNNING":
        log_file = settings.lxcpath / name / "start.log"
        run(["lxc-start", "-P", settings.lxcpath, "-n", name, "-d", "-o", log_file, "-l", "INFO"])
    run(["lxc-wait", "-P", settings.lxcpath, "-n", name, "-s", "RUNNING", "-t", "30"])


def stop(settings: LabSettings, name: str, timeout: int = 30) -> None:
    if state(settings, name) == "RUNNING":
        proc = run(["lxc-stop", "-P", settings.lxcpath, "-n", name, "-t", str(timeout)], check=False)
        if proc.returncode != 0:
            run(["lxc-stop", "-P", settings.lxcpath, "-n", name, "-k"])


def destroy(settings: LabSettings, name: str) -> bool:
    """Stop and delete a container with its snapshots; return whether it existed."""
    if not exists(settings, name):
        return False
    stop(settings, name, timeout=5)
    run(["lxc-destroy", "-P", settings.lxcpath, "-n", name, "-s"])
    return True


def attach(settings: LabSettings, name: str, script: str, timeout: float = 600) -> str:
    """Run a shell script inside a running container as root; return its stdout."""
    proc = run(
        [
            "lxc-attach",
            "-P",
            settings.lxcpath,
            "-n",
            name,
            "--clear-env",
            "-v",
            ATTACH_PATH,
            "-v",
            "LANG=C.UTF-8",
            "--",
            "/bin/sh",
            "-euc",
            script,
        ],
        timeout=timeout,
    )
    return proc.stdout


def wait_booted(settings: LabSettings, name: str, timeout: float = 60) -> str:
    """Wait until systemd in the container finished booting; return running or degraded."""
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        proc = run(
            [
                "lxc-attach",
                "-P",
                settings.lxcpath,
                "-n",
                name,
                "--clear-env",
                "-v",
                ATTACH_PATH,
                "--",
                "systemctl",
                "is-system-running",
            ],
            check=False,
        )
        status = proc.stdout.strip()
        if status in {"running", "degraded"}:
            return status
        time.sleep(0.2)
    raise LabError(f"systemd in container {name} is still {status or 'unreachable'} after {timeout:.0f} s")
