"""A single-node Ceph cluster (one mon, one mgr, one memstore OSD) on 127.0.0.1, run from Debian's packages.

Everything the cluster owns lives under one directory:

    DIR/ceph.conf                   configuration, including the mon address and the port window
    DIR/ceph.client.admin.keyring   client.admin key, for `ceph -c DIR/ceph.conf` and librados
    DIR/lab.json                    fsid, ports and OSD uuid chosen at bootstrap
    DIR/{mon,mgr,osd}/ceph-<id>/    daemon data (the OSD's memstore is dumped here on a clean stop)
    DIR/run/                        pid files and admin sockets (daemons: ceph-<name>.asok)
    DIR/log/                        daemon logs

Daemons are started with their usual daemonizing fork and found again through their pid files. A pid is
trusted only while /proc/<pid>/cmdline still names this cluster's ceph.conf, so a recycled pid of some
other process is never signalled.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lab.ceph.errors import LabCephError
from lab.ceph.pools import CephPools

log = logging.getLogger("lab.ceph")

MON_ID = "a"
MGR_ID = "x"
OSD_ID = 0
DAEMONS = ("mon", "mgr", "osd")

# Ports are taken from a window below Linux's ephemeral range (32768+), so outgoing connections never
# occupy them while the cluster is stopped, and far from Ceph's defaults (3300, 6789, 6800-7300).
PORT_WINDOW_FIRST = 20000
PORT_WINDOW_LAST = 32000
PORT_WINDOW_SIZE = 100

# First line of every ceph.conf this module writes; a directory is removed only when it carries it.
CONF_MARKER = "# Lab cluster written by `python -m lab.ceph start`; one mon, one mgr, one memstore OSD on 127.0.0.1."
# Entries a bootstrap creates before it writes ceph.conf.
EARLY_ENTRIES = frozenset({"run", "log", "crash"})

START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0


@dataclass
class ClusterFacts:
    """Values fixed at bootstrap and reused by every later start."""

    fsid: str
    mon_port_v2: int
    mon_port_v1: int
    bind_port_min: int
    bind_port_max: int
    osd_uuid: str

    @property
    def mon_host(self) -> str:
        return f"[v2:127.0.0.1:{self.mon_port_v2},v1:127.0.0.1:{self.mon_port_v1}]"


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_port_window() -> tuple[int, int]:
    """Return the first and last port of a window of PORT_WINDOW_SIZE ports whose first two are free now.

    The mon takes the first two ports. mgr and OSD scan the rest for free ports themselves, so two
    clusters that land on the same window still start, and only the mon ports must be unique.
    """
    bases = list(range(PORT_WINDOW_FIRST, PORT_WINDOW_LAST, PORT_WINDOW_SIZE))
    random.shuffle(bases)
    for base in bases:
        if _port_is_free(base) and _port_is_free(base + 1):
            return base, base + PORT_WINDOW_SIZE - 1
    raise LabCephError(f"no free port pair found in {PORT_WINDOW_FIRST}-{PORT_WINDOW_LAST} for the mon")


def render_conf(root: Path, facts: ClusterFacts) -> str:
    """Return ceph.conf for a cluster rooted at root."""
    run_dir = root / "run"
    return f"""\
{CONF_MARKER}
[global]
fsid = {facts.fsid}
mon host = {facts.mon_host}
mon initial members = {MON_ID}
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind port min = {facts.bind_port_min}
ms bind port max = {facts.bind_port_max}
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
run dir = {run_dir}
pid file = {run_dir}/$name.pid
log file = {root}/log/$name.log
mon cluster log file = {root}/log/cluster.log
crash dir = {root}/crash
log to stderr = false
err to stderr = true
# New pools get one replica, which is all a single OSD can hold. min_size keeps Ceph's default, so a
# size change resets it to size - size/2 as on a production cluster.
osd pool default size = 1
osd crush chooseleaf type = 0
mon max pg per osd = 1000
mon warn on pool no redundancy = false
# Lab disks are often fuller than a production mon disk may be; below crit the mon shuts itself down.
mon data avail warn = 2
mon data avail crit = 1
# Changes become visible in about 0.1 s and new PGs are clean in about 2 s instead of 10 s and more.
paxos propose interval = 0.1
mgr stats period = 1
mgr tick period = 1
# mgr_initial_modules is read once, when the mon creates the MgrMap. Ceph 16's `restful` module fails
# to load next to the dashboard package and turns health to WARN, so it is left out.
mgr initial modules = iostat nfs

[mon]
mon data = {root}/mon/$cluster-$id
# Erasure coded RBD pools need allow_ec_overwrites, which Ceph grants only on bluestore OSDs unless this
# debug switch (made for Ceph's own memstore tests) is on.
mon debug no require bluestore for ec overwrites = true
keyring = {root}/mon/$cluster-$id/keyring

[mgr]
mgr data = {root}/mgr/$cluster-$id
keyring = {root}/mgr/$cluster-$id/keyring

[osd]
osd data = {root}/osd/$cluster-$id
keyring = {root}/osd/$cluster-$id/keyring
osd objectstore = memstore
memstore device bytes = 1073741824
# Without this memstore skips its dump to osd data on stop and the pools are gone after a restart.
osd fast shutdown = false
osd op num shards = 1
osd op num threads per shard = 2

[client.admin]
keyring = {root}/ceph.client.admin.keyring
"""


class LabCeph:
    """Start, stop, inspect and purge the lab cluster rooted at one directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.conf = self.root / "ceph.conf"
        self.admin_keyring = self.root / "ceph.client.admin.keyring"
        self.facts_file = self.root / "lab.json"

    # ----- paths and processes

    def daemon_name(self, kind: str) -> str:
        return {"mon": f"mon.{MON_ID}", "mgr": f"mgr.{MGR_ID}", "osd": f"osd.{OSD_ID}"}[kind]

    def data_dir(self, kind: str) -> Path:
        daemon_id = {"mon": MON_ID, "mgr": MGR_ID, "osd": str(OSD_ID)}[kind]
        return self.root / kind / f"ceph-{daemon_id}"

    def pid_file(self, kind: str) -> Path:
        return self.root / "run" / f"{self.daemon_name(kind)}.pid"

    def pid(self, kind: str) -> int | None:
        """Return the pid of the running daemon of this kind, or None when it does not run."""
        try:
            pid = int(self.pid_file(kind).read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if self._is_ours(pid) else None

    def _is_ours(self, pid: int) -> bool:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return False
        # A zombie has exited already; only its parent's wait is missing.
        return state != "Z" and str(self.conf).encode() in cmdline

    def pids(self) -> dict[str, int | None]:
        return {kind: self.pid(kind) for kind in DAEMONS}

    def is_bootstrapped(self) -> bool:
        return self.facts_file.is_file() and (self.data_dir("osd") / "whoami").is_file()

    def facts(self) -> ClusterFacts:
        return ClusterFacts(**json.loads(self.facts_file.read_text()))

    # ----- start

    def start(self, timeout: float = START_TIMEOUT_S) -> bool:
        """Bring the cluster up and wait until every PG is active+clean.

        Returns False when all three daemons were already running (nothing was done), True otherwise.
        """
        pids = self.pids()
        if all(pids.values()):
            log.info("lab ceph in %s already runs (pids %s)", self.root, pids)
            return False

        deadline = time.monotonic() + timeout
        if not self.is_bootstrapped():
            self._bootstrap()
        else:
            # Rewritten on every start, so a restart picks up settings changed in render_conf.
            self.conf.write_text(render_conf(self.root, self.facts()))
            for kind in DAEMONS:
                if pids[kind] is None:
                    self._spawn(kind)
        self.wait_active_clean(deadline)
        log.info("lab ceph in %s is up, all PGs active+clean (pids %s)", self.root, self.pids())
        return True

    def _bootstrap(self) -> None:
        if self.root.exists() and any(self.root.iterdir()):
            # A half-finished bootstrap leaves keys and a mon store that no longer match; start over.
            self._check_removable()
            log.warning("removing the unfinished lab ceph in %s before bootstrapping again", self.root)
            self.stop()
            shutil.rmtree(self.root)
        for sub in ("run", "log", "crash"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

        first, last = pick_port_window()
        facts = ClusterFacts(
            fsid=str(uuid.uuid4()),
            mon_port_v2=first,
            mon_port_v1=first + 1,
            bind_port_min=first + 2,
            bind_port_max=last,
            osd_uuid=str(uuid.uuid4()),
        )
        self.conf.write_text(render_conf(self.root, facts))

        self._make_mon(facts)
        self._spawn("mon")
        with self.client() as cluster:
            # Values set in ceph.conf override `ceph config set`, so anything a test or an operator
            # may want to flip at run time goes to the mon's config database instead.
            for option in ("mon_allow_pool_delete", "mon_allow_pool_size_one"):
                cluster.mon({"prefix": "config set", "who": "mon", "name": option, "value": "true"})
            self._make_mgr(cluster)
            self._spawn("mgr")
            self._make_osd(cluster, facts)
        self._spawn("osd")
        # lab.json marks a finished bootstrap; it is written last so that a crash above is redone.
        self.facts_file.write_text(json.dumps(asdict(facts), indent=2) + "\n")

    def _make_mon(self, facts: ClusterFacts) -> None:
        mon_dir = self.data_dir("mon")
        mon_dir.mkdir(parents=True)
        mon_keyring = self.root / "mon.keyring"
        _tool([
            "ceph-authtool", "--create-keyring", str(mon_keyring), "--gen-key", "-n", "mon.", "--cap", "mon", "allow *",
        ])  # fmt: skip
        _tool([
            "ceph-authtool", "--create-keyring", str(self.admin_keyring), "--gen-key", "-n", "client.admin",
            "--cap", "mon", "allow *", "--cap", "osd", "allow *", "--cap", "mds", "allow *", "--cap", "mgr", "allow *",
        ])  # fmt: skip
        _tool(["ceph-authtool", str(mon_keyring), "--import-keyring", str(self.admin_keyring)])
        monmap = self.root / "monmap"
        _tool(["monmaptool", "--create", "--fsid", facts.fsid, "--addv", MON_ID, facts.mon_host, str(monmap)])
        _tool([
            "ceph-mon", "-c", str(self.conf), "--mkfs", "-i", MON_ID,
            "--monmap", str(monmap), "--keyring", str(mon_keyring),
        ])  # fmt: skip
        monmap.unlink()
        mon_keyring.unlink()

    def _make_mgr(self, cluster: CephPools) -> None:
        mgr_dir = self.data_dir("mgr")
        mgr_dir.mkdir(parents=True)
        entity = self.daemon_name("mgr")
        caps = ["mon", "allow profile mgr", "osd", "allow *", "mds", "allow *"]
        [auth] = cluster.mon({"prefix": "auth get-or-create", "entity": entity, "caps": caps})
        (mgr_dir / "keyring").write_text(f"[{entity}]\n\tkey = {auth['key']}\n")

    def _make_osd(self, cluster: CephPools, facts: ClusterFacts) -> None:
        osd_dir = self.data_dir("osd")
        osd_dir.mkdir(parents=True)
        secret = _tool(["ceph-authtool", "--gen-print-key"]).strip()
        # `osd new` allocates the id, registers the uuid and creates the osd.N key with the OSD caps at once.
        command = {"prefix": "osd new", "uuid": facts.osd_uuid, "id": OSD_ID}
        cluster.mon(command, inbuf=json.dumps({"cephx_secret": secret}).encode())
        (osd_dir / "keyring").write_text(f"[{self.daemon_name('osd')}]\n\tkey = {secret}\n")
        _tool(["ceph-osd", "-c", str(self.conf), "--mkfs", "-i", str(OSD_ID), "--osd-uuid", facts.osd_uuid])

    def _spawn(self, kind: str) -> None:
        """Start one daemon; the daemonizing parent returns once the child has initialised."""
        program = f"ceph-{kind}"
        daemon_id = {"mon": MON_ID, "mgr": MGR_ID, "osd": str(OSD_ID)}[kind]
        _tool([program, "-c", str(self.conf), "-i", daemon_id])
        # ceph-mgr's parent may return before the child has written its pid file.
        deadline = time.monotonic() + 10
        while self.pid(kind) is None:
            if time.monotonic() > deadline:
                raise LabCephError(
                    f"{program} -i {daemon_id} started but wrote no live pid to {self.pid_file(kind)}; "
                    f"see {self.root}/log/{self.daemon_name(kind)}.log"
                )
            time.sleep(0.05)
        log.info("started %s (pid %s)", self.daemon_name(kind), self.pid(kind))

    # ----- readiness

    @contextlib.contextmanager
    def client(self) -> Iterator[CephPools]:
        """Yield a connected CephPools as client.admin, closed on exit."""
        pools = CephPools(str(self.conf))
        try:
            yield pools
        finally:
            pools.close()

    def wait_active_clean(self, deadline: float) -> dict[str, Any]:
        """Wait until the mgr reports every PG of every pool active+clean and the OSD up and in."""
        last: dict[str, Any] = {}
        with self.client() as cluster:
            while time.monotonic() < deadline:
                osd_stat = cluster.mon({"prefix": "osd stat"})
                pools = cluster.mon({"prefix": "osd pool ls", "detail": "detail"})
                expected_pgs = sum(int(pool["pg_num"]) for pool in pools)
                # The mon's PG summary lags behind; the mgr's `pg stat` is current.
                try:
                    last = cluster.mgr({"prefix": "pg stat"}).get("pg_summary", {})
                except LabCephError:
                    last = {}
                clean = sum(s["num"] for s in last.get("num_pg_by_state", []) if s["name"] == "active+clean")
                if (
                    osd_stat.get("num_up_osds") == 1
                    and osd_stat.get("num_in_osds") == 1
                    and last.get("num_pgs") == expected_pgs
                    and clean == expected_pgs
                ):
                    return last
                time.sleep(0.2)
        raise LabCephError(
            f"lab ceph in {self.root} not active+clean in time: last pg stat {last}; see {self.root}/log"
        )

    def status(self) -> dict[str, Any]:
        """Return daemon pids and, when the mon runs, health and PG summary."""
        result: dict[str, Any] = {"dir": str(self.root), "bootstrapped": self.is_bootstrapped(), "pids": self.pids()}
        if self.is_bootstrapped():
            facts = self.facts()
            result.update(
                fsid=facts.fsid, mon_host=facts.mon_host, conf=str(self.conf), keyring=str(self.admin_keyring)
            )
        if result["pids"]["mon"] and result["pids"]["mgr"]:
            with self.client() as cluster:
                result["health"] = cluster.mon({"prefix": "health"}).get("status")
                result["pg_summary"] = cluster.mgr({"prefix": "pg stat"}).get("pg_summary")
        return result

    # ----- stop and purge

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> list[int]:
        """Stop the daemons (OSD first, mon last) by pid; return the pids that were signalled."""
        stopped = []
        for kind in reversed(DAEMONS):
            pid = self.pid(kind)
            if pid is None:
                continue
            log.info("stopping %s (pid %s)", self.daemon_name(kind), pid)
            os.kill(pid, signal.SIGTERM)
            if not self._wait_gone(pid, timeout):
                # The OSD dumps its memstore on SIGTERM; after the timeout that data is given up.
                log.warning(
                    "%s (pid %s) ignored SIGTERM for %.0f s, sending SIGKILL", self.daemon_name(kind), pid, timeout
                )
                os.kill(pid, signal.SIGKILL)
                if not self._wait_gone(pid, 10):
                    raise LabCephError(f"{self.daemon_name(kind)} (pid {pid}) survived SIGKILL")
            stopped.append(pid)
        return stopped

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._is_ours(pid):
                return True
            time.sleep(0.05)
        return False

    def purge(self) -> None:
        """Stop the cluster and remove its directory."""
        if not self.root.exists():
            return
        self._check_removable()
        self.stop()
        shutil.rmtree(self.root)

    def _check_removable(self) -> None:
        """Raise unless the directory holds only what this module writes, so a wrong --dir deletes nothing."""
        entries = {entry.name for entry in self.root.iterdir()}
        if entries <= EARLY_ENTRIES:
            return
        try:
            first_line = self.conf.read_text().split("\n", 1)[0]
        except FileNotFoundError:
            first_line = ""
        if first_line != CONF_MARKER:
            raise LabCephError(
                f"{self.root} is not empty and holds no lab cluster (no ceph.conf written by lab.ceph), so it was "
                "not removed; pass a new or empty directory, or one made by `python -m lab.ceph start`"
            )


def _tool(cmd: list[str]) -> str:
    """Run a Ceph command-line tool and return its stdout; raise LabCephError with its output on failure."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise LabCephError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout
