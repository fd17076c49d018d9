"""Ceph pool operations through librados mon and mgr commands, with the outcomes of Ceph 16's
commands made explicit.

Ceph's pool commands succeed quietly in several cases where a caller expects an error, and refuse a few
changes unless a confirmation flag is passed. Each method here returns or raises what actually happened:

- `osd pool create` of an existing pool returns 0 ("already exists"): `create` returns False.
- `osd pool delete` of a missing pool returns 0: `delete` returns False.
- `osd pool set size 1` is refused without `yes_i_really_mean_it` (and needs mon_allow_pool_size_one).
- `osd pool application enable` of a second application is refused without `yes_i_really_mean_it`.
- The client's pool list (`list_pools()`) is stale until `wait_for_latest_osdmap()`, so listing asks the
  mon for `osd dump` instead.
"""

from __future__ import annotations

import errno
import json
import threading
from collections.abc import Mapping
from typing import Any

from lab.ceph.errors import CephCommandError, LabCephError, PoolNotFoundError

COMMAND_TIMEOUT_S = 30


class CephPools:
    """Pool operations on one cluster, over a single librados handle shared by all threads."""

    def __init__(self, conffile: str, *, name: str = "client.admin", keyring: str | None = None) -> None:
        self.conffile = conffile
        self.name = name
        self.keyring = keyring
        self._cluster: Any = None
        self._lock = threading.Lock()

    # ----- connection and raw commands

    def _handle(self) -> Any:
        with self._lock:
            if self._cluster is None:
                import rados  # noqa: PLC0415  (Debian's python3-rados, only under /usr/bin/python3 and its venvs)

                conf = {"keyring": self.keyring} if self.keyring else {}
                cluster = rados.Rados(conffile=self.conffile, name=self.name, conf=conf)
                try:
                    cluster.connect(timeout=COMMAND_TIMEOUT_S)
                except rados.Error as exc:
                    cluster.shutdown()
                    raise LabCephError(f"cannot connect to Ceph with {self.conffile} as {self.name}: {exc}") from exc
                self._cluster = cluster
            return self._cluster

    def close(self) -> None:
        with self._lock:
            if self._cluster is not None:
                self._cluster.shutdown()
                self._cluster = None

    def mon(self, command: Mapping[str, Any], *, inbuf: bytes = b"") -> Any:
        """Run a mon command; return its decoded JSON output, or Ceph's status line when there is none."""
        return self._run(self._handle().mon_command, command, inbuf)

    def mgr(self, command: Mapping[str, Any]) -> Any:
        """Run a mgr command (e.g. `pg stat`, `osd pool autoscale-status`) and return its decoded JSON output."""
        return self._run(self._handle().mgr_command, command, b"")

    @staticmethod
    def _run(send: Any, command: Mapping[str, Any], inbuf: bytes) -> Any:
        body = {**command, "format": "json"}
        code, outbuf, outs = send(json.dumps(body), inbuf, timeout=COMMAND_TIMEOUT_S)
        if code == -errno.ENOENT and outs.startswith("unrecognized pool"):
            raise PoolNotFoundError(command["prefix"], code, outs)
        if code != 0:
            raise CephCommandError(command["prefix"], code, outs)
        return json.loads(outbuf) if outbuf.strip() else outs

    # ----- reading

    def list(self) -> list[dict[str, Any]]:
        """Return every pool as `osd dump` describes it (id, name, type, size, options, applications)."""
        return [*self.mon({"prefix": "osd dump"})["pools"]]

    def names(self) -> list[str]:
        return [pool["pool_name"] for pool in self.list()]

    def details(self, name: str) -> dict[str, Any]:
        """Return `osd pool get NAME all` (size, min_size, pg_num, crush_rule name, target sizes, flags)."""
        return dict(self.mon({"prefix": "osd pool get", "pool": name, "var": "all"}))

    def applications(self, name: str) -> dict[str, Any]:
        """Return the pool's enabled applications with their metadata, e.g. {"rbd": {}}."""
        return dict(self.mon({"prefix": "osd pool application get", "pool": name}))

    def exists(self, name: str) -> bool:
        return name in self.names()

    def usage(self) -> dict[int, dict[str, Any]]:
        """Return the `df` statistics of each pool, keyed by pool id."""
        return {pool["id"]: pool["stats"] for pool in self.mon({"prefix": "df"})["pools"] if "stats" in pool}

    def autoscale_status(self) -> dict[str, dict[str, Any]]:
        """Return the pg_autoscaler's view of each pool, keyed by pool name ({} while the mgr has no data)."""
        try:
            rows = self.mgr({"prefix": "osd pool autoscale-status"})
        except CephCommandError:
            return {}
        return {row["pool_name"]: row for row in rows} if isinstance(rows, list) else {}

    def crush_rules(self) -> dict[int, str]:
        """Return CRUSH rule names keyed by rule id."""
        return {rule["rule_id"]: rule["rule_name"] for rule in self.mon({"prefix": "osd crush rule dump"})}

    def ec_profile(self, name: str) -> dict[str, str] | None:
        """Return an erasure code profile's settings, or None when it does not exist."""
        try:
            profile = self.mon({"prefix": "osd erasure-code-profile get", "name": name})
        except CephCommandError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise
        return dict(profile)

    # ----- writing

    def create(
        self,
        name: str,
        pg_num: int,
        *,
        pool_type: str = "replicated",
        ec_profile: str | None = None,
        autoscale_mode: str | None = None,
    ) -> bool:
        """Create a pool; return False when one of that name existed already (Ceph then changes nothing).

        autoscale_mode (on, off, warn) is set in the same command, so the autoscaler never acts on the new pool
        under the cluster default before a later `osd pool set` would change the mode.
        """
        command: dict[str, Any] = {"prefix": "osd pool create", "pool": name, "pg_num": pg_num, "pool_type": pool_type}
        if ec_profile:
            command["erasure_code_profile"] = ec_profile
        if autoscale_mode:
            command["autoscale_mode"] = autoscale_mode
        outs = self.mon(command)
        return "already exists" not in str(outs)

    def set(self, name: str, var: str, value: str | int | float | bool) -> str:
        """Set one pool variable (`osd pool set`) and return Ceph's status line."""
        command: dict[str, Any] = {"prefix": "osd pool set", "pool": name, "var": var, "val": _ceph_value(value)}
        if var == "size" and int(value) == 1:
            # Refused without the flag, and also unless the mon allows size 1 (mon_allow_pool_size_one).
            command["yes_i_really_mean_it"] = True
        return str(self.mon(command))

    def enable_application(self, name: str, application: str, *, replace_existing: bool = False) -> str:
        """Enable an application on a pool; enabling it again is a no-op.

        Ceph refuses a second application unless `replace_existing` passes its confirmation flag (the
        first application stays enabled either way).
        """
        command: dict[str, Any] = {"prefix": "osd pool application enable", "pool": name, "app": application}
        if replace_existing:
            command["yes_i_really_mean_it"] = True
        return str(self.mon(command))

    def delete(self, name: str) -> bool:
        """Delete a pool and its data; return False when it did not exist.

        Needs mon_allow_pool_delete=true in the mon's config database.
        """
        outs = self.mon({"prefix": "osd pool delete", "pool": name, "pool2": name, "yes_i_really_really_mean_it": True})
        return "does not exist" not in str(outs)

    def create_ec_profile(
        self, name: str, k: int, m: int, *, failure_domain: str = "host", device_class: str | None = None
    ) -> None:
        settings = [f"k={k}", f"m={m}", f"crush-failure-domain={failure_domain}"]
        if device_class:
            settings.append(f"crush-device-class={device_class}")
        self.mon({"prefix": "osd erasure-code-profile set", "name": name, "profile": settings})

    def delete_ec_profile(self, name: str) -> None:
        self.mon({"prefix": "osd erasure-code-profile rm", "name": name})

    def delete_crush_rule(self, name: str) -> None:
        self.mon({"prefix": "osd crush rule rm", "name": name})

    def wait_for_latest_osdmap(self) -> None:
        """Make this client's own osdmap current, so `list_pools()` and ioctx lookups see recent changes."""
        self._handle().wait_for_latest_osdmap()


def _ceph_value(value: str | int | float | bool) -> str:
    """Render a value as `osd pool set` expects it: booleans as true/false, floats without a trailing .0."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
