"""The apt caching proxy (Debian's apt-cacher-ng) that lab containers use, as stores use a local mirror.

It listens on the bridge address only, runs with its own configuration, cache and PID file under the
lab directory, and forwards only to the Debian archives named in the host's own apt sources, resolved
the way the host resolves them.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ._proc import LOG, LabError, run, write_text
from .settings import LabSettings

# Ports tried for the proxy, counted from LabSettings.proxy_port; one per lab on this host.
PORT_RANGE = 64


@dataclass(frozen=True)
class AptSource:
    """One deb822 stanza of the host's apt sources."""

    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]
    signed_by: str | None


def read_host_sources(path: Path) -> list[AptSource]:
    """Parse the host's deb822 sources file (Types: deb stanzas only)."""
    if not path.is_file():
        raise LabError(f"host apt sources {path} not found; the lab copies the host's Debian sources into containers")
    sources = []
    for stanza in path.read_text().split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line:
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes") == "no":
            continue
        for uri in fields.get("uris", "").split():
            sources.append(
                AptSource(
                    uri=uri.rstrip("/"),
                    suites=tuple(fields.get("suites", "").split()),
                    components=tuple(fields.get("components", "main").split()),
                    signed_by=fields.get("signed-by"),
                )
            )
    if not sources:
        raise LabError(f"{path} has no enabled 'Types: deb' stanza")
    for source in sources:
        if urlsplit(source.uri).scheme != "http":
            raise LabError(f"apt source {source.uri} in {path} is not plain http, which apt-cacher-ng cannot cache")
    return sources


def archive_mirror(sources: list[AptSource], release: str) -> str:
    """Return the URI of the stanza that carries the release itself (the debootstrap mirror)."""
    for source in sources:
        if release in source.suites:
            return source.uri
    raise LabError(f"no host apt source carries suite {release!r}; add it or set LabSettings.release")


def render_sources(sources: list[AptSource]) -> str:
    """Render the deb822 sources file for containers: the host's archives, unchanged."""
    stanzas = []
    for source in sources:
        lines = [
            "Types: deb",
            f"URIs: {source.uri}",
            f"Suites: {' '.join(source.suites)}",
            f"Components: {' '.join(source.components)}",
        ]
        if source.signed_by:
            lines.append(f"Signed-By: {source.signed_by}")
        stanzas.append("\n".join(lines))
    return "\n\n".join(stanzas) + "\n"


def render_config(settings: LabSettings, port: int, sources: list[AptSource]) -> str:
    """Render acng.conf: bridge address only, lab-local state, and only the host's archives as backends."""
    state = settings.proxy_dir
    lines = [
        "# Written by python -m lab.lxc; apt-cacher-ng for the lab containers.",
        f"CacheDir: {state / 'cache'}",
        f"LogDir: {state / 'log'}",
        "SupportDir: /usr/lib/apt-cacher-ng",
        f"PidFile: {state / 'apt-cacher-ng.pid'}",
        f"SocketPath: {state / 'admin.sock'}",
        f"BindAddress: {settings.host_address}",
        f"Port: {port}",
        # Forward only requests that match a Remap prefix below; refuse every other host.
        "ForceManaged: 1",
        "PassThroughPattern: ^$",
        "ExThreshold: 4",
        "ReportPage: acng-report.html",
    ]
    for index, source in enumerate(sources):
        parts = urlsplit(source.uri)
        prefix = f"{parts.netloc}{parts.path}"
        lines.append(f"Remap-lab{index}: {prefix} ; {source.uri}/")
    return "\n".join(lines) + "\n"


def _pid_file(settings: LabSettings) -> Path:
    return settings.proxy_dir / "apt-cacher-ng.pid"


def running_pid(settings: LabSettings) -> int | None:
    """Return the PID of this lab's apt-cacher-ng, or None; a PID reused by another program does not count."""
    try:
        pid = int(_pid_file(settings).read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    ours = str(settings.proxy_dir).encode()
    if not cmdline[0].endswith(b"apt-cacher-ng") or not any(ours in arg for arg in cmdline):
        return None
    return pid


def proxy_port(settings: LabSettings) -> int:
    """Return the port this lab's proxy uses: the recorded one, else the default or a free one."""
    recorded = settings.proxy_dir / "port"
    if recorded.is_file():
        return int(recorded.read_text())
    port = _first_free_port(str(settings.host_address), settings.proxy_port)
    write_text(recorded, f"{port}\n")
    return port


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _first_free_port(host: str, first: int) -> int:
    """Return the first free port from first on; another lab on this host may hold the default one.

    NOTE: apt-cacher-ng 3.7.4 (Debian 12) fails to bind some high ports such as 32768 or 58753 ("Error resolving
    address for binding") while 40000 works, so ports come from a short range above the default and never from
    the kernel's ephemeral range.
    """
    for port in range(first, first + PORT_RANGE):
        if _port_free(host, port):
            return port
    raise LabError(f"no free port for apt-cacher-ng on {host} in {first}-{first + PORT_RANGE - 1}")


def _wait_listening(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise LabError(f"apt-cacher-ng does not listen on {host}:{port} after {timeout:.0f} s; see its log")


def ensure_proxy(settings: LabSettings) -> int:
    """Start this lab's apt-cacher-ng when it is not running; return its port. Needs the bridge address."""
    sources = read_host_sources(settings.host_apt_sources)
    port = proxy_port(settings)
    config_dir = settings.proxy_dir / "conf"
    changed = write_text(config_dir / "acng.conf", render_config(settings, port, sources))
    for sub in ("cache", "log"):
        (settings.proxy_dir / sub).mkdir(parents=True, exist_ok=True)

    pid = running_pid(settings)
    if pid is not None and not changed:
        return port
    if pid is not None:
        stop_proxy(settings)

    run(["apt-cacher-ng", "-c", config_dir, "ForeGround=0"])
    _wait_listening(str(settings.host_address), port, timeout=15)
    LOG.info("apt-cacher-ng listening on %s:%d (pid %s)", settings.host_address, port, running_pid(settings))
    return port


def stop_proxy(settings: LabSettings) -> bool:
    """Stop this lab's apt-cacher-ng by its PID; return whether one was running."""
    pid = running_pid(settings)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.1)
    if Path(f"/proc/{pid}").exists():
        os.kill(pid, signal.SIGKILL)
    _pid_file(settings).unlink(missing_ok=True)
    LOG.info("apt-cacher-ng (pid %d) stopped", pid)
    return True
