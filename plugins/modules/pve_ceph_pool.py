#!/usr/bin/python
# Copyright: (c) 2025, retail.edge maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: pve_ceph_pool
short_description: Declare a Ceph pool of a Proxmox VE cluster and make Ceph match it
version_added: 0.1.0
description:
  - Creates, changes or destroys one Ceph pool through the Proxmox VE API (C(/nodes/{node}/ceph/pool)),
    as the PVE web interface and C(pveceph pool) do.
  - Values are compared by meaning. O(target_size=10G) matches a pool whose target size is 10737418240
    bytes, V(0.5) matches a stored ratio of C(0.5), and a target size or ratio of V(0) matches one that
    is not set.
  - While the PG autoscaler of the pool is V(on), it owns C(pg_num), so O(pg_num) is only used to create
    the pool and is otherwise ignored with a warning, unless O(pin_pg_num=true).
  - When O(size) changes, Ceph resets C(min_size) of the pool. The module then sets C(min_size) again to
    O(min_size), or to the value it had before (at most the new size) when O(min_size) is not given.
  - Settings that Ceph cannot change on an existing pool fail the task before any change, with the
    reason. These are erasure coding (a replicated pool cannot become erasure coded) and the application
    once one is enabled.
  - All options are validated before the first API call, so a typo fails with the valid form in the
    message instead of reaching PVE.
author:
  - retail.edge maintainers (@retail-edge)
extends_documentation_fragment:
  - retail.edge.pve
  - retail.edge.pve.ACTIONGROUP_PVE
  - retail.edge.attributes
attributes:
  check_mode:
    support: full
    details:
      - Check mode reads what a real run reads and reports the same C(changed), RV(changed_keys) and diff.
        For a new pool it predicts PVE's defaults (size 3, min_size 2, pg_num 128, application rbd,
        autoscale mode warn) for the options not given.
  diff_mode:
    support: full
    details:
      - The diff shows the pool settings that the declaration manages, before and after, with
        C(target_size) in bytes. C(pg_num) is the value the pool is set to; while placement groups split or
        merge, Ceph moves the actual count there step by step.
options:
  name:
    description:
      - Name of the pool. With O(erasure_coding), PVE creates the pools C(NAME-data) (erasure coded) and
        C(NAME-metadata) (replicated) and the module manages both under this name.
      - Must not contain C(:), C(/) or white space, as in PVE.
    type: str
    required: true
  state:
    description:
      - V(present) creates the pool when missing and changes the declared settings that differ.
      - V(absent) destroys the pool (both pools of an erasure coded one) and the data in it.
    type: str
    choices: [present, absent]
    default: present
  node:
    description:
      - Cluster node whose PVE API runs the Ceph commands. Any node with Ceph installed serves the whole
        cluster.
      - When not set, the first online node in name order is used.
    type: str
  size:
    description:
      - Number of replicas per object, from 1 to 7. PVE's default for a new pool is 3.
      - For an erasure coded pool this applies to its metadata pool.
    type: int
  min_size:
    description:
      - Minimum number of replicas for I/O to proceed, from 1 to 7 and at most O(size). PVE's default
        for a new pool is 2.
      - For an erasure coded pool this applies to its metadata pool.
    type: int
  pg_num:
    description:
      - Number of placement groups, from 1 to 32768. PVE's default for a new pool is 128.
      - Ignored on an existing pool while its autoscale mode is V(on), unless O(pin_pg_num=true).
    type: int
  pin_pg_num:
    description:
      - Apply O(pg_num) to an existing pool even while the PG autoscaler is V(on).
      - The autoscaler may move C(pg_num) again later. To keep it above a floor, set O(pg_num_min) instead.
    type: bool
    default: false
  pg_num_min:
    description:
      - Minimum number of placement groups the autoscaler may choose, from 1 to 32768.
    type: int
  pg_autoscale_mode:
    description:
      - Mode of the PG autoscaler for this pool. PVE's default for a new pool is V(warn).
    type: str
    choices: ['on', 'off', warn]
  application:
    description:
      - Application the pool is for. PVE's default for a new pool is V(rbd).
      - Ceph keeps an application once enabled, so a different application on an existing pool fails.
    type: str
    choices: [rbd, cephfs, rgw]
  crush_rule:
    description:
      - Name of the CRUSH rule that places the objects of the pool, such as V(replicated_rule).
      - For an erasure coded pool this applies to its metadata pool.
    type: str
  target_size:
    description:
      - Expected size of the pool, as a hint for the PG autoscaler.
      - A number with an optional binary unit C(K), C(M), C(G) or C(T), such as V(10G) or V(1.5T).
        V(0) removes the hint.
    type: str
  target_size_ratio:
    description:
      - Expected share of the cluster's capacity, as a hint for the PG autoscaler, such as V(0.5).
        Takes precedence over O(target_size) in Ceph. V(0) removes the hint.
    type: float
  erasure_coding:
    description:
      - Create the pool erasure coded, for RBD, with a replicated metadata pool beside it.
      - Used when the pool is created. Declaring it for an existing replicated pool fails, because Ceph
        cannot convert a pool.
    type: dict
    suboptions:
      k:
        description: Number of data chunks, at least 2.
        type: int
        required: true
      m:
        description: Number of coding chunks, at least 1.
        type: int
        required: true
      failure_domain:
        description: CRUSH failure domain of the chunks, such as V(host) or V(osd).
        type: str
        default: host
      device_class:
        description: CRUSH device class the chunks are placed on, such as V(ssd).
        type: str
      profile:
        description: Existing erasure code profile to use instead of creating one from O(erasure_coding.k)
          and O(erasure_coding.m).
        type: str
  add_storages:
    description:
      - Add a PVE storage of type C(rbd), named like the pool, for container and VM volumes on the new pool.
      - Used only when the pool is created. PVE's default is V(false) for a replicated and V(true) for an
        erasure coded pool.
    type: bool
  force:
    description:
      - With O(state=absent), destroy the pool even when PVE storages on it still hold volumes.
    type: bool
    default: false
  remove_storages:
    description:
      - With O(state=absent), also remove the PVE storages that use the pool.
    type: bool
    default: false
  remove_ecprofile:
    description:
      - With O(state=absent), also remove the erasure code profile of an erasure coded pool.
    type: bool
    default: true
  timeout:
    description:
      - Seconds to wait for each PVE task that creates, changes or destroys the pool.
    type: int
    default: 120
notes:
  - PVE's API does not report the erasure code profile of a pool, so C(k) and C(m) of an existing
    erasure coded pool are not compared with O(erasure_coding).
seealso:
  - name: Proxmox VE Ceph pools
    description: The pool settings and their defaults in the PVE administration guide.
    link: https://pve.proxmox.com/pve-docs/chapter-pveceph.html#pve_ceph_pools
"""

EXAMPLES = r"""
- name: Pool for container volumes, with an RBD storage for it
  retail.edge.pve_ceph_pool:
    api_host: pve1.store-0042.example
    api_user: root@pam
    api_password: "{{ vault_pve_root_password }}"
    name: ct-volumes
    size: 3
    min_size: 2
    application: rbd
    pg_autoscale_mode: 'on'
    target_size_ratio: 0.6
    add_storages: true

- name: CephFS data pool with a fixed number of placement groups
  retail.edge.pve_ceph_pool:
    name: asset-cache
    application: cephfs
    pg_autoscale_mode: 'off'
    pg_num: 64
    target_size: 200G

- name: Erasure coded pool across three hosts
  retail.edge.pve_ceph_pool:
    name: archive
    erasure_coding:
      k: 2
      m: 1
      failure_domain: host

- name: Remove a pool and its PVE storage
  retail.edge.pve_ceph_pool:
    name: scratch
    state: absent
    remove_storages: true
"""

RETURN = r"""
pool:
  description:
    - The pool as PVE lists it (C(GET /nodes/{node}/ceph/pool)) after the run, or before it in check mode.
    - For an erasure coded pool, its data pool. Empty when the pool does not exist.
  returned: always
  type: dict
  sample:
    pool: 3
    pool_name: ct-volumes
    type: replicated
    size: 3
    min_size: 2
    pg_num: 32
    pg_autoscale_mode: 'on'
    crush_rule: 0
    crush_rule_name: replicated_rule
    target_size_ratio: 0.6
    application_metadata:
      rbd: {}
metadata_pool:
  description: The metadata pool of an erasure coded pool, as PVE lists it.
  returned: when the pool is erasure coded
  type: dict
changed_keys:
  description: Settings that were changed (or would be in check mode), sorted. On create and destroy, every
    managed setting.
  returned: always
  type: list
  elements: str
  sample: [min_size, size]
node:
  description: The node whose API ran the Ceph commands.
  returned: always
  type: str
  sample: pve1
upids:
  description: Ids of the PVE tasks that applied the change, in order.
  returned: always
  type: list
  elements: str
"""

import re
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.retail.edge.plugins.module_utils._pve import (
    PVE_AUTH_MUTUALLY_EXCLUSIVE,
    PVE_AUTH_REQUIRED_ONE_OF,
    PVE_AUTH_REQUIRED_TOGETHER,
    PVE_AUTH_SPEC,
    PveClient,
    PveError,
)

NAME_RE = re.compile(r"^[^:/\s]+$")
TARGET_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)([KMGT])?$")
UNIT_BYTES = {None: 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
RATIO_TOLERANCE = 1e-9

# PVE's values for settings that a new pool leaves out (PVE::API2::Ceph::Pool createpool).
CREATE_DEFAULTS = {"size": 3, "min_size": 2, "pg_num": 128, "application": "rbd", "pg_autoscale_mode": "warn"}
# Settings of an erasure coded pool that PVE applies to its metadata pool; the rest go to the data pool.
METADATA_POOL_KEYS = ("size", "min_size", "crush_rule")
SETTING_KEYS = (
    "size",
    "min_size",
    "pg_num",
    "pg_num_min",
    "pg_autoscale_mode",
    "application",
    "crush_rule",
    "target_size",
    "target_size_ratio",
)


class PoolDeclarationError(ValueError):
    """Invalid option values; the message lists each one with its valid form."""


def parse_target_size(text: str) -> int:
    """Convert a PVE size such as `10G` or `1.5T` to bytes, as PVE's parse_size does (binary units)."""
    match = TARGET_SIZE_RE.match(text)
    if match is None:
        raise PoolDeclarationError(
            f"target_size {text!r} is invalid: use a number with an optional unit K, M, G or T, such as 10G"
        )
    return int(float(match.group(1)) * UNIT_BYTES[match.group(2)])


def validate(params: dict[str, Any]) -> list[str]:
    """Return one message per invalid option value, each with the valid form; empty when all are valid."""
    errors = []
    if not NAME_RE.match(params["name"]):
        errors.append(
            f"name {params['name']!r} is invalid: a Ceph pool name in PVE must not contain ':', '/' or "
            "white space, such as 'ct-volumes'"
        )
    for key, low, high in (("size", 1, 7), ("min_size", 1, 7), ("pg_num", 1, 32768), ("pg_num_min", 1, 32768)):
        value = params.get(key)
        if value is not None and not low <= value <= high:
            errors.append(f"{key} {value} is out of range: PVE accepts {low} to {high}")
    if params.get("size") is not None and params.get("min_size") is not None and params["min_size"] > params["size"]:
        errors.append(
            f"min_size {params['min_size']} is larger than size {params['size']}: use at most {params['size']}"
        )
    if params.get("target_size") is not None:
        try:
            parse_target_size(params["target_size"])
        except PoolDeclarationError as exc:
            errors.append(str(exc))
    ratio = params.get("target_size_ratio")
    if ratio is not None and ratio < 0:
        errors.append(f"target_size_ratio {ratio} is invalid: use 0 or a positive share such as 0.5")
    erasure = params.get("erasure_coding")
    if erasure:
        if erasure["k"] < 2:
            errors.append(f"erasure_coding.k {erasure['k']} is too small: use at least 2 data chunks")
        if erasure["m"] < 1:
            errors.append(f"erasure_coding.m {erasure['m']} is too small: use at least 1 coding chunk")
    return errors


def declared_settings(params: dict[str, Any]) -> dict[str, Any]:
    """Return the declared pool settings in the form `pool_view` reports them (target_size in bytes)."""
    settings = {key: params[key] for key in SETTING_KEYS if params.get(key) is not None}
    if "target_size" in settings:
        settings["target_size"] = parse_target_size(settings["target_size"])
    if "target_size_ratio" in settings:
        settings["target_size_ratio"] = float(settings["target_size_ratio"])
    return settings


def pool_view(entry: dict[str, Any]) -> dict[str, Any]:
    """Return the settings of one entry of PVE's pool list in the module's terms.

    Unset target hints read as 0, the value that removes them. `application` is the enabled application,
    or a sorted list when Ceph has several. `pg_num` is the value the pool is set to: while PGs split or
    merge, Ceph moves the pool's actual pg_num there step by step, and the autoscaler status names it.
    """
    applications = sorted(entry.get("application_metadata") or {})
    autoscale = entry.get("autoscale_status") or {}
    return {
        "size": entry.get("size"),
        "min_size": entry.get("min_size"),
        "pg_num": autoscale.get("pg_num_target", entry.get("pg_num")),
        "pg_num_min": entry.get("pg_num_min"),
        "pg_autoscale_mode": entry.get("pg_autoscale_mode"),
        "application": applications[0] if len(applications) == 1 else (applications or None),
        "crush_rule": entry.get("crush_rule_name", entry.get("crush_rule")),
        "target_size": int(entry.get("target_size") or 0),
        "target_size_ratio": float(entry.get("target_size_ratio") or 0.0),
    }


def same_value(key: str, current: Any, declared: Any) -> bool:
    if key == "target_size_ratio":
        return abs(float(current or 0.0) - float(declared)) < RATIO_TOLERANCE
    if key == "application" and isinstance(current, list):
        return declared in current
    return current == declared


def put_value(key: str, value: Any) -> Any:
    """Encode one setting for PVE's PUT/POST (target_size as a plain byte count)."""
    if key == "target_size":
        return str(value)
    return value


class PoolManager:
    """Reads the pool from PVE, compares it with the declaration and applies the difference."""

    def __init__(self, module: AnsibleModule, client: PveClient) -> None:
        self.module = module
        self.client = client
        self.params = module.params
        self.name: str = self.params["name"]
        self.declared = declared_settings(self.params)
        self.node = self.params["node"] or self._pick_node()
        self.upids: list[str] = []
        self.warnings: list[str] = []
        self.min_size_after: int | None = None

    # ----- reading

    def _pick_node(self) -> str:
        nodes = sorted(entry["node"] for entry in self.client.get("nodes") if entry.get("status") == "online")
        if not nodes:
            raise PveError("no cluster node is online; set the node option to a node whose API serves Ceph")
        return nodes[0]

    def list_pools(self) -> dict[str, dict[str, Any]]:
        return {entry["pool_name"]: entry for entry in self.client.get(f"nodes/{self.node}/ceph/pool")}

    def find(self, pools: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Return the existing pools behind the name: {"main": ...} or {"data": ..., "metadata": ...}, or {}."""
        if self.name in pools:
            return {"main": pools[self.name]}
        data = pools.get(f"{self.name}-data")
        if data is not None and data.get("type") == "erasure":
            found = {"data": data}
            metadata = pools.get(f"{self.name}-metadata")
            if metadata is not None:
                found["metadata"] = metadata
            return found
        return {}

    def current_view(self, found: dict[str, dict[str, Any]]) -> dict[str, Any]:
        if "main" in found:
            return pool_view(found["main"])
        view = pool_view(found["data"])
        if "metadata" in found:
            metadata = pool_view(found["metadata"])
            view.update({key: metadata[key] for key in METADATA_POOL_KEYS})
        return view

    # ----- the run

    def run(self) -> dict[str, Any]:
        found = self.find(self.list_pools())
        if self.params["state"] == "absent":
            return self.run_absent(found)
        if not found:
            return self.run_create()

        self.check_unchangeable(found)
        current = self.current_view(found)
        changes = self.changes(current)
        keys = [*self.declared, *(key for key in changes if key not in self.declared)]
        before = {key: current.get(key) for key in keys}
        after = {**before, **changes}
        if changes and not self.module.check_mode:
            self.update(found, changes)
            found = self.find(self.list_pools())
            refreshed = self.current_view(found)
            after = {key: refreshed.get(key) for key in keys}
        return self.result(before, after, found)

    def run_absent(self, found: dict[str, dict[str, Any]]) -> dict[str, Any]:
        before = self.current_view(found) if found else {}
        if found and not self.module.check_mode:
            self.destroy(found)
            found = self.find(self.list_pools())
        return self.result(before, {}, found)

    def run_create(self) -> dict[str, Any]:
        after = {**CREATE_DEFAULTS, **self.declared}
        found: dict[str, dict[str, Any]] = {}
        if not self.module.check_mode:
            self.create()
            found = self.find(self.list_pools())
            if not found:
                raise PveError(f"PVE reported pool {self.name!r} as created, but its pool list does not show it")
            created = self.current_view(found)
            after = {key: created.get(key) for key in after}
        return self.result({}, after, found)

    def check_unchangeable(self, found: dict[str, dict[str, Any]]) -> None:
        if self.params["erasure_coding"] and "main" in found and found["main"].get("type") != "erasure":
            raise PveError(
                f"pool {self.name!r} exists as a {found['main'].get('type', 'replicated')} pool and Ceph cannot "
                "convert it to erasure coding; create a new pool with erasure_coding and move the data, or "
                "drop erasure_coding from the declaration"
            )
        declared_application = self.declared.get("application")
        current = self.current_view(found)["application"]
        if declared_application and current and not same_value("application", current, declared_application):
            raise PveError(
                f"pool {self.name!r} already has application {current!r} and Ceph keeps an application once "
                f"enabled, so application {declared_application!r} cannot be set; declare application: {current} "
                "or create a new pool"
            )

    def changes(self, current: dict[str, Any]) -> dict[str, Any]:
        """Return the declared settings that differ from the pool, with the value each will have afterwards."""
        changes = {key: value for key, value in self.declared.items() if not same_value(key, current.get(key), value)}
        autoscale = self.declared.get("pg_autoscale_mode", current.get("pg_autoscale_mode"))
        if "pg_num" in changes and autoscale == "on" and not self.params["pin_pg_num"]:
            del changes["pg_num"]
            self.warnings.append(
                f"pg_num {self.declared['pg_num']} is not applied to pool {self.name!r} because its PG autoscaler "
                f"is on and keeps pg_num at {current.get('pg_num')}; set pin_pg_num: true to apply it anyway, or "
                "pg_autoscale_mode: warn to let the declaration own pg_num"
            )
        if "size" in changes:
            # Ceph resets min_size on every size change, so the value it must end at is fixed here: the
            # declared one, or else the old one as long as it fits the new size.
            self.min_size_after = self.declared.get("min_size", min(current["min_size"], changes["size"]))
            if self.min_size_after != current["min_size"]:
                changes["min_size"] = self.min_size_after
        return changes

    # ----- writing

    def create(self) -> None:
        params: dict[str, Any] = {"name": self.name}
        params.update({key: put_value(key, value) for key, value in self.declared.items()})
        erasure = self.params["erasure_coding"]
        if erasure:
            params["erasure-coding"] = erasure_coding_string(erasure)
        if self.params["add_storages"] is not None:
            params["add_storages"] = int(self.params["add_storages"])
        self._task("POST", f"nodes/{self.node}/ceph/pool", params)

    def update(self, found: dict[str, dict[str, Any]], changes: dict[str, Any]) -> None:
        for pool_name, keys in self._targets(found):
            part = {key: changes[key] for key in keys if key in changes}
            if part:
                self._set(pool_name, part)
        if "size" in changes:
            refreshed = self.find(self.list_pools())
            if self.current_view(refreshed)["min_size"] != self.min_size_after:
                pool_name = next(name for name, keys in self._targets(refreshed) if "min_size" in keys)
                self._set(pool_name, {"min_size": self.min_size_after})

    def _targets(self, found: dict[str, dict[str, Any]]) -> list[tuple[str, tuple[str, ...]]]:
        """Return (pool name, settings it takes) for the pool, or for both pools of an erasure coded one."""
        if "main" in found:
            return [(found["main"]["pool_name"], SETTING_KEYS)]
        data_keys = tuple(key for key in SETTING_KEYS if key not in METADATA_POOL_KEYS)
        targets = [(found["data"]["pool_name"], data_keys)]
        if "metadata" in found:
            targets.append((found["metadata"]["pool_name"], METADATA_POOL_KEYS))
        return targets

    def _set(self, pool_name: str, settings: dict[str, Any]) -> None:
        params = {key: put_value(key, value) for key, value in settings.items()}
        self._task("PUT", f"nodes/{self.node}/ceph/pool/{pool_name}", params)

    def destroy(self, found: dict[str, dict[str, Any]]) -> None:
        params = {
            "force": int(self.params["force"]),
            "remove_storages": int(self.params["remove_storages"]),
            "remove_ecprofile": int(self.params["remove_ecprofile"]),
        }
        for pool_name, _keys in self._targets(found):
            self._task("DELETE", f"nodes/{self.node}/ceph/pool/{pool_name}", params)

    def _task(self, method: str, path: str, params: dict[str, Any]) -> None:
        upid = self.client.run_task(method, path, self.params["timeout"], params)
        if upid:
            self.upids.append(upid)

    # ----- result

    def result(self, before: dict[str, Any], after: dict[str, Any], found: dict[str, dict[str, Any]]) -> dict[str, Any]:
        if before and after:
            changed_keys = sorted(key for key in after if not same_value(key, before.get(key), after[key]))
        else:
            # Create or destroy: every managed setting comes or goes.
            changed_keys = sorted({*before, *after})
        result: dict[str, Any] = {
            "changed": bool(changed_keys) or bool(before) != bool(after),
            "changed_keys": changed_keys,
            "node": self.node,
            "upids": self.upids,
            "pool": found.get("main") or found.get("data") or {},
        }
        if "metadata" in found:
            result["metadata_pool"] = found["metadata"]
        if self.module._diff:
            result["diff"] = {
                "before": {"name": self.name, **before} if before else {},
                "after": {"name": self.name, **after} if after else {},
            }
        for warning in self.warnings:
            self.module.warn(warning)
        return result


def erasure_coding_string(erasure: dict[str, Any]) -> str:
    """Return PVE's property string for erasure-coding, such as `k=2,m=1,failure-domain=host`."""
    parts = [f"k={erasure['k']}", f"m={erasure['m']}"]
    for key, pve_key in (
        ("failure_domain", "failure-domain"),
        ("device_class", "device-class"),
        ("profile", "profile"),
    ):
        if erasure.get(key):
            parts.append(f"{pve_key}={erasure[key]}")
    return ",".join(parts)


def argument_spec() -> dict[str, Any]:
    spec: dict[str, Any] = dict(PVE_AUTH_SPEC)
    spec.update(
        name={"type": "str", "required": True},
        state={"type": "str", "choices": ["present", "absent"], "default": "present"},
        node={"type": "str"},
        size={"type": "int"},
        min_size={"type": "int"},
        pg_num={"type": "int"},
        pin_pg_num={"type": "bool", "default": False},
        pg_num_min={"type": "int"},
        pg_autoscale_mode={"type": "str", "choices": ["on", "off", "warn"]},
        application={"type": "str", "choices": ["rbd", "cephfs", "rgw"]},
        crush_rule={"type": "str"},
        target_size={"type": "str"},
        target_size_ratio={"type": "float"},
        erasure_coding={
            "type": "dict",
            "options": {
                "k": {"type": "int", "required": True},
                "m": {"type": "int", "required": True},
                "failure_domain": {"type": "str", "default": "host"},
                "device_class": {"type": "str"},
                "profile": {"type": "str"},
            },
        },
        add_storages={"type": "bool"},
        force={"type": "bool", "default": False},
        remove_storages={"type": "bool", "default": False},
        remove_ecprofile={"type": "bool", "default": True},
        timeout={"type": "int", "default": 120},
    )
    return spec


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        mutually_exclusive=PVE_AUTH_MUTUALLY_EXCLUSIVE,
        required_one_of=PVE_AUTH_REQUIRED_ONE_OF,
        required_together=PVE_AUTH_REQUIRED_TOGETHER,
    )
    errors = validate(module.params)
    if errors:
        module.fail_json(msg="; ".join(errors), invalid_options=errors)
    try:
        client = PveClient(module)
        result = PoolManager(module, client).run()
    except PveError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
