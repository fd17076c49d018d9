"""The lab bridge: host address, no gateway, no NAT and no forwarding, so containers reach only the host."""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path

from ._proc import LOG, LabError, run
from .settings import LabSettings

PROC_SYS = Path("/proc/sys/net/ipv4")


def mac_for(address: IPv4Address) -> str:
    """Derive a locally administered unicast MAC from an IPv4 address (02:00 + the four octets).

    A fixed MAC per address keeps the host's ARP entry valid when a container is recreated with the
    same address; a random MAC leaves a stale entry and delays the first connection.
    """
    return "02:00:" + ":".join(f"{octet:02x}" for octet in address.packed)


def check_forwarding_off(settings: LabSettings) -> None:
    """Raise unless IPv4 forwarding is off host-wide; switch it off on the lab bridge itself."""
    if (PROC_SYS / "ip_forward").read_text().strip() != "0":
        raise LabError(
            "net.ipv4.ip_forward is 1 on this host, so lab containers could be routed beyond the host; "
            "the lab needs it off: run 'sysctl -w net.ipv4.ip_forward=0' if nothing else on this host needs routing"
        )
    bridge_forwarding = PROC_SYS / "conf" / settings.bridge / "forwarding"
    if bridge_forwarding.exists() and bridge_forwarding.read_text().strip() != "0":
        bridge_forwarding.write_text("0\n")


def bridge_exists(settings: LabSettings) -> bool:
    return Path("/sys/class/net", settings.bridge).exists()


def ensure_bridge(settings: LabSettings) -> bool:
    """Create the bridge with the host address and bring it up; return whether anything changed."""
    changed = False
    if not bridge_exists(settings):
        # forward_delay 0 and no STP: a container's veth forwards at once instead of after 15 s of listening.
        run(["ip", "link", "add", settings.bridge, "type", "bridge", "forward_delay", "0", "stp_state", "0"])
        LOG.info("bridge %s created", settings.bridge)
        changed = True

    wanted = str(settings.host_interface)
    shown = run(["ip", "-4", "-o", "addr", "show", "dev", settings.bridge]).stdout
    if f" {wanted} " not in shown:
        run(["ip", "addr", "add", wanted, "dev", settings.bridge])
        changed = True

    if "UP" not in run(["ip", "-o", "link", "show", "dev", settings.bridge]).stdout.split(">")[0]:
        run(["ip", "link", "set", settings.bridge, "up"])
        changed = True

    check_forwarding_off(settings)
    return changed


def bridge_ports(settings: LabSettings) -> list[str]:
    """Return the interfaces attached to the bridge (the veth ends of running containers)."""
    brif = Path("/sys/class/net", settings.bridge, "brif")
    return sorted(entry.name for entry in brif.iterdir()) if brif.is_dir() else []


def remove_bridge(settings: LabSettings) -> bool:
    """Delete the bridge unless a container of another lab still uses it; return whether it was deleted."""
    if not bridge_exists(settings):
        return False
    ports = bridge_ports(settings)
    if ports:
        LOG.warning("bridge %s kept: interfaces %s are still attached", settings.bridge, ", ".join(ports))
        return False
    run(["ip", "link", "delete", settings.bridge, "type", "bridge"])
    LOG.info("bridge %s deleted", settings.bridge)
    return True
