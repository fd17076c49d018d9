"""Baseline of every workload container: SSH, listeners, service users, secret files, data egress."""

from __future__ import annotations

import ipaddress
import subprocess
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.compliance.conftest import address_of
from tests.compliance.workloads import WORKLOADS

pytestmark = pytest.mark.container

# Files whose names mark them as secrets; none of them may be readable by every user.
SECRET_NAME_TESTS = (
    "-name secrets.env -o -name secret -o -name '*.key' -o -name '*_key' -o -name '*.token' "
    "-o \\( -name passwd -path '/etc/mosquitto/*' \\)"
)


def workload_of(declared: dict[str, Any]):
    name = declared["container"]["workload"]
    assert name in WORKLOADS, f"no compliance entry for workload {name}: add it to tests/compliance/workloads.py"
    return WORKLOADS[name]


def test_sshd_accepts_keys_only(host) -> None:
    settings = dict(line.split(" ", 1) for line in host.check_output("/usr/sbin/sshd -T").splitlines() if " " in line)
    assert settings["passwordauthentication"] == "no"
    assert settings["kbdinteractiveauthentication"] == "no"
    assert settings["permitemptypasswords"] == "no"
    assert settings["permitrootlogin"] in ("no", "without-password", "prohibit-password")


def test_sshd_offers_no_password_login(declared) -> None:
    """A client that offers only passwords is refused before any password is asked for."""
    proc = subprocess.run(
        [
            "ssh",
            "-o",
            "BatchMode=yes",
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "PreferredAuthentications=password,keyboard-interactive",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=10",
            f"root@{address_of(declared)}",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 255
    assert "Permission denied (publickey)" in proc.stderr


def listeners(host) -> list[tuple[str, int]]:
    """Return (address, port) of every listening TCP and UDP socket."""
    result = []
    for line in host.check_output("ss -Htlnu").splitlines():
        local = line.split()[4]
        address, _, port = local.rpartition(":")
        result.append((address.strip("[]").split("%")[0], int(port)))
    return result


WILDCARD_ADDRESSES = frozenset({"*", "0.0.0.0", "::"})  # noqa: S104 - compared with, never bound


def is_loopback(address: str) -> bool:
    return address not in WILDCARD_ADDRESSES and ipaddress.ip_address(address).is_loopback


def test_listens_only_on_declared_ports(host, declared) -> None:
    workload = workload_of(declared)
    allowed = {22} | {int(declared["ports"][key]) for key in workload.ports}
    public = {port for address, port in listeners(host) if not is_loopback(address)}
    assert public <= allowed, f"unexpected listeners on ports {sorted(public - allowed)}"


def test_serves_every_declared_port(host, declared) -> None:
    workload = workload_of(declared)
    public = {port for address, port in listeners(host) if not is_loopback(address)}
    for key in workload.ports:
        assert int(declared["ports"][key]) in public, f"nothing listens on the {key} port"


def unit_processes(host, unit: str) -> list[tuple[str, str]]:
    """Return (user, command) of every process of a systemd unit."""
    rows = host.check_output("ps -eo user:32=,unit:64=,comm=").splitlines()
    return [
        (row.split()[0], row.split()[2])
        for row in rows
        if len(row.split()) >= 3 and row.split()[1] == f"{unit}.service"
    ]


def test_services_enabled_and_running(host, declared) -> None:
    for unit in workload_of(declared).units:
        service = host.service(unit.name)
        assert service.is_enabled, f"{unit.name} is not enabled"
        assert service.is_running, f"{unit.name} is not running"


def test_services_run_as_own_user(host, declared) -> None:
    for unit in workload_of(declared).units:
        processes = unit_processes(host, unit.name)
        assert processes, f"{unit.name} has no processes"
        users = {user for user, _command in processes}
        root_processes = [command for user, command in processes if user == "root"]
        assert unit.user in users, f"{unit.name} runs as {sorted(users)}, expected {unit.user}"
        assert len(root_processes) <= (1 if unit.root_master else 0), f"{unit.name} runs {root_processes} as root"
        assert host.user(unit.user).uid < 1000, f"{unit.user} is not a system user"


def test_secret_files_not_world_readable(host) -> None:
    roots = "/etc /var/lib/retail-edge /opt/retail-edge"
    found = host.check_output(f"find {roots} -xdev \\( {SECRET_NAME_TESTS} \\) -perm -o=r -print 2>/dev/null || true")
    assert found.strip() == "", f"secret files readable by every user:\n{found}"


def test_declared_secret_files_restricted(host, declared) -> None:
    for path in workload_of(declared).secret_files:
        secret = host.file(path)
        assert secret.exists, f"{path} is missing"
        assert secret.mode & 0o007 == 0, f"{path} has mode {oct(secret.mode)}"
        assert secret.user == "root" or secret.user in {unit.user for unit in workload_of(declared).units}


def test_no_remote_log_forwarding(host) -> None:
    forwarding = host.run(
        "grep -rhsE '^[^#]*(@@?[0-9A-Za-z\\[]|omfwd|omrelp)' /etc/rsyslog.conf /etc/rsyslog.d /etc/syslog-ng"
    )
    assert forwarding.stdout.strip() == "", f"syslog forwards off the container:\n{forwarding.stdout}"
    assert not host.service("systemd-journal-upload").is_running


def allowed_peer(address: str, declared: dict[str, Any]) -> bool:
    """Inside the store's subnet, loopback, or the declared HQ: the only places store data may go."""
    hq_host = urlsplit(declared["hq_url"]).hostname if declared["hq_url"] else None
    if address in (hq_host, "localhost"):
        return True
    try:
        ip = ipaddress.ip_address(address.removeprefix("::ffff:"))
    except ValueError:
        return False  # a host name other than HQ's
    return ip.is_loopback or ip in ipaddress.ip_network(declared["store"]["subnet"])


def test_outgoing_connections_stay_in_store(host, declared) -> None:
    listening = {port for _address, port in listeners(host)}
    outgoing = []
    for line in host.check_output("ss -Htn state established").splitlines():
        fields = line.split()
        local_port = int(fields[2].rpartition(":")[2])
        peer = fields[3].rpartition(":")[0].strip("[]")
        if local_port not in listening:
            outgoing.append(peer)
    leaving = [peer for peer in outgoing if not allowed_peer(peer, declared)]
    assert not leaving, f"connections that leave the store: {leaving}"


def test_service_settings_point_inside_store(host, declared) -> None:
    """Every URL in the services' settings names a store address or HQ, so no data is sent elsewhere."""
    settings = host.run("cat /etc/retail-edge/*/settings.yml 2>/dev/null").stdout
    urls = [word.strip("'\",") for word in settings.split() if "://" in word]
    for url in urls:
        hostname = urlsplit(url).hostname
        assert hostname, f"settings name {url} without a host"
        assert allowed_peer(hostname, declared), f"settings name {url}, outside the store and HQ"
