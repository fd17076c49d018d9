"""Ceph pool routes of the PVE double (`/nodes/{node}/ceph/pool...`), applied to a real cluster through librados.

The routes follow PVE::API2::Ceph::Pool of Proxmox VE 8: the same parameters, defaults and error
messages, and writes that return a UPID and run as a task (`cephcreatepool`, `cephsetpool`,
`cephdestroypool`) whose log shows what Ceph did. `add_storages` registers an RBD storage in the
double's storage list, so `GET /storage` shows it and containers can put their volumes on it.

The cluster is the one named by the lab config (`extension_settings: {ceph: {conf: PATH}}`). A lab config
without it gets no Ceph routes at all (HTTP 501), so doubles for tests that do not need Ceph start
without one and every route they serve works.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lab.ceph.errors import CephCommandError, LabCephError
from lab.ceph.pools import CephPools
from lab.pve import lxcconf
from lab.pve.app import Request, fail
from lab.pve.config import GIB, ConfigError, Storage
from lab.pve.formats import STORAGE_ID_RE, parse_size
from lab.pve.schema import Prop, PropertyFormat, parse_property_string, schema
from lab.pve.tasks import TaskContext, TaskError

if TYPE_CHECKING:
    from lab.pve.app import PveApp

LOG = logging.getLogger("lab.pve.ceph")
STATE_KEY = "ceph"
POOL_TYPES = {1: "replicated", 3: "erasure"}
# Keys that PVE copies from `osd pool get NAME all` into a pool's status, besides the renamed ones.
STATUS_FLAGS = (
    "noscrub",
    "nodeep-scrub",
    "nodelete",
    "nopgchange",
    "nosizechange",
    "write_fadvise_dontneed",
    "hashpspool",
    "use_gmt_hitset",
    "fast_read",
)

POOL_NAME = Prop(optional=False, pattern=r"[^:/\s]+")
COMMON_OPTIONS = {
    "size": Prop("integer", minimum=1, maximum=7),
    "min_size": Prop("integer", minimum=1, maximum=7),
    "pg_num": Prop("integer", minimum=1, maximum=32768),
    "pg_num_min": Prop("integer", maximum=32768),
    "crush_rule": Prop(),
    "application": Prop(enum=("rbd", "cephfs", "rgw")),
    "pg_autoscale_mode": Prop(enum=("on", "off", "warn")),
    "target_size": Prop(pattern=r"(\d+(\.\d+)?)([KMGT])?"),
    "target_size_ratio": Prop("number"),
}
ERASURE_CODING = PropertyFormat(
    "ceph-erasure-coding",
    {
        "k": Prop("integer", optional=False, minimum=2),
        "m": Prop("integer", optional=False, minimum=1),
        "failure-domain": Prop(default="host"),
        "device-class": Prop(),
        "profile": Prop(),
    },
)
NODE_SCHEMA = schema({"node": lxcconf.NODE})
CREATE_SCHEMA = schema(
    {
        "node": lxcconf.NODE,
        "name": POOL_NAME,
        "add_storages": Prop("boolean"),
        "erasure-coding": Prop(format=ERASURE_CODING),
        **COMMON_OPTIONS,
    }
)
SET_SCHEMA = schema({"node": lxcconf.NODE, "name": POOL_NAME, **COMMON_OPTIONS})
DESTROY_SCHEMA = schema(
    {
        "node": lxcconf.NODE,
        "name": Prop(optional=False),
        "force": Prop("boolean", default=0),
        "remove_storages": Prop("boolean", default=0),
        "remove_ecprofile": Prop("boolean", default=1),
    }
)
POOL_SCHEMA = schema({"node": lxcconf.NODE, "name": Prop(optional=False)})
STATUS_SCHEMA = schema({"node": lxcconf.NODE, "name": Prop(optional=False), "verbose": Prop("boolean", default=0)})


@dataclass(frozen=True)
class CephSettings:
    """Connection settings of the cluster: its ceph.conf and the cephx identity (keyring from the conf if unset)."""

    conf: str
    user: str = "client.admin"
    keyring: str | None = None


def ceph_settings(app: PveApp) -> CephSettings | None:
    """Return the `ceph` extension settings of the lab config, or None when the lab has no Ceph."""
    raw = app.config.extension_settings.get("ceph")
    if not raw:
        return None
    unknown = set(raw) - {"conf", "user", "keyring"}
    if unknown or "conf" not in raw:
        raise ConfigError(
            f"extension_settings.ceph needs 'conf' (a ceph.conf path) and takes 'user' and 'keyring'; got {sorted(raw)}"
        )
    keyring = raw.get("keyring")
    return CephSettings(
        conf=str(raw["conf"]),
        user=str(raw.get("user", "client.admin")),
        keyring=None if keyring is None else str(keyring),
    )


def register(app: PveApp) -> None:
    settings = ceph_settings(app)
    if settings is None:
        LOG.info("no extension_settings.ceph in the lab config: Ceph pool routes are off")
        return
    routes = CephPoolRoutes(app, settings)
    for task_type, description in (
        ("cephcreatepool", "Ceph Pool Create"),
        ("cephsetpool", "Ceph Pool Edit"),
        ("cephdestroypool", "Ceph Pool Destroy"),
    ):
        app.register_task_type(task_type, description)
    app.route("GET", "/nodes/{node}/ceph/pool", NODE_SCHEMA)(routes.list_pools)
    app.route("POST", "/nodes/{node}/ceph/pool", CREATE_SCHEMA)(routes.create_pool)
    app.route("GET", "/nodes/{node}/ceph/pool/{name}", POOL_SCHEMA)(routes.pool_index)
    app.route("PUT", "/nodes/{node}/ceph/pool/{name}", SET_SCHEMA)(routes.set_pool)
    app.route("DELETE", "/nodes/{node}/ceph/pool/{name}", DESTROY_SCHEMA)(routes.destroy_pool)
    app.route("GET", "/nodes/{node}/ceph/pool/{name}/status", STATUS_SCHEMA)(routes.pool_status)
    app.route("GET", "/nodes/{node}/ceph/rules", NODE_SCHEMA)(routes.list_rules)
    routes.restore_storages()


class CephPoolRoutes:
    """Handlers of the pool routes, sharing one librados connection that opens on first use."""

    def __init__(self, app: PveApp, settings: CephSettings) -> None:
        self.app = app
        self.settings = settings
        self._pools: CephPools | None = None
        self._lock = threading.Lock()

    # ----- the cluster

    def pools(self) -> CephPools:
        with self._lock:
            if self._pools is None:
                self._pools = CephPools(self.settings.conf, name=self.settings.user, keyring=self.settings.keyring)
            return self._pools

    def _read(self, node: str, action: Any) -> Any:
        """Run a read against Ceph for a synchronous route; Ceph's errors become HTTP 500 errors worded as PVE's."""
        self.app.require_node(node)
        pools = self.pools()
        try:
            return action(pools)
        except CephCommandError as exc:
            raise fail(f"mon_command failed - {exc.outs}") from None
        except LabCephError as exc:
            raise fail(f"rados_connect failed - {exc}") from None

    # ----- reads

    def list_pools(self, request: Request) -> list[dict[str, Any]]:
        return self._read(request.params["node"], pool_list)

    def pool_index(self, request: Request) -> list[dict[str, str]]:
        self.app.require_node(request.params["node"])
        return [{"name": "status"}]

    def pool_status(self, request: Request) -> dict[str, Any]:
        params = request.params
        verbose = bool(params.get("verbose", 0))
        return self._read(params["node"], lambda pools: pool_status(pools, params["name"], verbose))

    def list_rules(self, request: Request) -> list[dict[str, str]]:
        rules = self._read(request.params["node"], CephPools.crush_rules)
        return [{"name": name} for name in sorted(rules.values())]

    # ----- writes

    def create_pool(self, request: Request) -> str:
        params = dict(request.params)
        node = params.pop("node")
        name = params.pop("name")
        add_storages = params.pop("add_storages", None)
        self.app.require_node(node)
        pools = self.pools()
        to_target_size_bytes(params)

        erasure = None
        if "erasure-coding" in params:
            erasure = parse_property_string(ERASURE_CODING, params.pop("erasure-coding"))
            erasure.setdefault("failure-domain", "host")
            profile = erasure.get("profile")
            if profile and self._read(node, lambda pools: pools.ec_profile(profile)) is None:
                raise fail(f"Erasure code profile '{profile}' does not exist.")
            if add_storages is None:
                add_storages = 1
        if add_storages and not STORAGE_ID_RE.fullmatch(name):
            raise fail("pool name contains characters which are illegal for storage naming")

        for key, default in (("pg_num", 128), ("size", 3), ("min_size", 2), ("application", "rbd")):
            params.setdefault(key, default)
        params.setdefault("pg_autoscale_mode", "warn")

        def work(task: TaskContext) -> None:
            pool = name
            data_pool = None
            if erasure is not None:
                data_pool = self._create_erasure_data_pool(task, pools, name, erasure, params)
                # PVE gives the metadata pool 32 PGs; the data pool got the requested pg_num.
                params["pg_num"] = 32
                pool = f"{name}-metadata"
            create_pool(task, pools, pool, params)
            if add_storages:
                try:
                    self.add_storage(pools, pool, name, data_pool)
                except TaskError as exc:
                    raise TaskError(f"adding PVE storage for ceph pool '{name}' failed: {exc}") from None

        return self.app.tasks.spawn(node, "cephcreatepool", name, request.caller.authid, work)

    def _create_erasure_data_pool(
        self, task: TaskContext, pools: CephPools, name: str, erasure: dict[str, Any], params: dict[str, Any]
    ) -> str:
        profile = erasure.get("profile")
        if not profile:
            profile = f"pve_ec_{name}"
            try:
                pools.create_ec_profile(
                    profile,
                    erasure["k"],
                    erasure["m"],
                    failure_domain=erasure["failure-domain"],
                    device_class=erasure.get("device-class"),
                )
            except CephCommandError as exc:
                raise TaskError(f"could not create erasure code profile '{profile}': {exc.outs}") from None
            task.log(f"created new erasure code profile '{profile}'")
        data_params = {key: value for key, value in params.items() if key not in ("size", "min_size", "crush_rule")}
        data_params.update(pool_type="erasure", erasure_code_profile=profile, allow_ec_overwrites="true")
        data_pool = f"{name}-data"
        create_pool(task, pools, data_pool, data_params)
        return data_pool

    def set_pool(self, request: Request) -> str:
        params = dict(request.params)
        node = params.pop("node")
        name = params.pop("name")
        self.app.require_node(node)
        pools = self.pools()
        to_target_size_bytes(params)

        def work(task: TaskContext) -> None:
            set_pool(task, pools, name, params)

        return self.app.tasks.spawn(node, "cephsetpool", name, request.caller.authid, work)

    def destroy_pool(self, request: Request) -> str:
        params = request.params
        node, name = params["node"], params["name"]
        force = bool(params.get("force", 0))
        remove_storages = bool(params.get("remove_storages", 0))
        remove_profile = bool(params.get("remove_ecprofile", 1))
        self.app.require_node(node)
        pools = self.pools()

        def work(task: TaskContext) -> None:
            storages = self.storages_on(name)
            if not force:
                for storage_id in sorted(storages):
                    task.log(f"checking storage '{storage_id}' for RBD images..")
                    storage = self.app.storages.get(storage_id)
                    if storage is not None and any(self.app.backend.list_volumes(node, storage)):
                        raise TaskError(f"ceph pool '{name}' still in use by storage '{storage_id}'")
            properties = ceph_call(pools.details, name)
            ceph_call(pools.delete, name)
            profile = properties.get("erasure_code_profile")
            if profile:
                remove_erasure_leftovers(task, pools, properties, remove_profile=remove_profile)
            if remove_storages:
                for storage_id in sorted(storages):
                    self.remove_storage(storage_id)

        return self.app.tasks.spawn(node, "cephdestroypool", name, request.caller.authid, work)

    # ----- RBD storages

    def add_storage(self, pools: CephPools, pool: str, storage_id: str, data_pool: str | None) -> None:
        """Register an RBD storage on the pool as PVE's storage API would (content rootdir,images; krbd 0)."""
        if storage_id in self.app.storages:
            raise TaskError(f"storage ID '{storage_id}' already defined")
        entry = {"pool": pool, "krbd": 0, "content": "rootdir,images"}
        if data_pool:
            entry["data-pool"] = data_pool
        try:
            entry["total"] = int(pools.mon({"prefix": "df"})["stats"]["total_bytes"])
        except LabCephError:
            entry["total"] = 100 * GIB
        with self.app.store.mutate() as state:
            state["extra"].setdefault(STATE_KEY, {}).setdefault("storages", {})[storage_id] = entry
        self.app.register_storage(rbd_storage(storage_id, entry))
        LOG.info("registered RBD storage %s on pool %s", storage_id, pool)

    def storages_on(self, pool: str) -> dict[str, dict[str, Any]]:
        """Return the RBD storages (id -> settings) whose pool or data pool is this pool."""
        with self.app.store.lock:
            storages = self.app.store.data["extra"].get(STATE_KEY, {}).get("storages", {})
            return {
                storage_id: dict(entry)
                for storage_id, entry in storages.items()
                if pool in (entry.get("pool"), entry.get("data-pool"))
            }

    def remove_storage(self, storage_id: str) -> None:
        with self.app.store.mutate() as state:
            state["extra"].get(STATE_KEY, {}).get("storages", {}).pop(storage_id, None)
        self.app.storages.pop(storage_id, None)
        LOG.info("removed RBD storage %s", storage_id)

    def restore_storages(self) -> None:
        """Register the RBD storages recorded in the state again, after a restart of the double."""
        with self.app.store.lock:
            storages = dict(self.app.store.data["extra"].get(STATE_KEY, {}).get("storages", {}))
        for storage_id, entry in storages.items():
            self.app.register_storage(rbd_storage(storage_id, entry))


def rbd_storage(storage_id: str, entry: dict[str, Any]) -> Storage:
    return Storage(
        storage=storage_id,
        type="rbd",
        content=tuple(entry["content"].split(",")),
        shared=True,
        total=int(entry.get("total", 100 * GIB)),
    )


# ----- pool operations with PVE's semantics (PVE::Ceph::Tools create_pool and set_pool)


def ceph_call(action: Any, *args: Any) -> Any:
    """Run one librados call inside a task; Ceph's errors end the task with PVE's wording."""
    try:
        return action(*args)
    except CephCommandError as exc:
        raise TaskError(f"mon_command failed - {exc.outs}") from None


def to_target_size_bytes(params: dict[str, Any]) -> None:
    """Replace PVE's `target_size` (such as `10G`) with Ceph's `target_size_bytes`, as PVE does."""
    if "target_size" in params:
        params["target_size_bytes"] = parse_size(params.pop("target_size"))


def create_pool(task: TaskContext, pools: CephPools, pool: str, params: dict[str, Any]) -> None:
    """Create a pool with pg_num (and type and profile), then apply the other settings with set_pool."""
    settings = dict(params)
    pg_num = int(settings.pop("pg_num", 128))
    pool_type = settings.pop("pool_type", "replicated")
    profile = settings.pop("erasure_code_profile", None)
    autoscale_mode = settings.pop("pg_autoscale_mode", None)
    ceph_call(
        lambda: pools.create(pool, pg_num, pool_type=pool_type, ec_profile=profile, autoscale_mode=autoscale_mode)
    )
    set_pool(task, pools, pool, settings)


def set_pool(task: TaskContext, pools: CephPools, pool: str, params: dict[str, Any]) -> None:
    """Apply settings one by one, size first because a size change resets min_size in Ceph.

    Settings equal to the current value are skipped. A setting Ceph rejects is logged and the others
    still go through; the task then fails naming every setting that could not be set.
    """
    settings = dict(params)
    current = ceph_call(pools.details, pool)
    if current.get("erasure_code_profile"):
        for key in ("size", "crush_rule"):
            if settings.pop(key, None) is not None:
                task.log(f"cannot set '{key}' for erasure coded pool")
    keys = sorted(key for key in settings if key != "size")
    if "size" in settings:
        keys.insert(0, "size")

    failed = []
    for key in keys:
        value = settings[key]
        if key in current and ceph_text(current[key]) == ceph_text(value):
            task.log(f"skipping '{key}', did not change")
            continue
        try:
            outs = apply_setting(pools, pool, key, value)
        except CephCommandError as exc:
            task.log(f"mon_command failed - {exc.outs}")
            failed.append(key)
            continue
        if outs:
            task.log(outs)
    if failed:
        raise TaskError(f"Could not set: {', '.join(failed)}")


def apply_setting(pools: CephPools, pool: str, key: str, value: Any) -> str:
    """Apply one pool setting; `application` enables an application, every other key is `osd pool set`."""
    if key == "application":
        return pools.enable_application(pool, str(value))
    return pools.set(pool, key, value)


def ceph_text(value: Any) -> str:
    """Render a value as PVE's string comparison (Perl's `eq`) compares it: 0.5 as 0.5, true as 1."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def remove_erasure_leftovers(
    task: TaskContext, pools: CephPools, properties: dict[str, Any], *, remove_profile: bool
) -> None:
    """Remove the CRUSH rule (and the profile unless kept) that Ceph made for an erasure coded pool."""
    profile = properties["erasure_code_profile"]
    rule = properties.get("crush_rule")
    task.log(f"found erasure coded profile '{profile}', destroying its CRUSH rule")
    try:
        pools.delete_crush_rule(rule)
    except CephCommandError as exc:
        task.log(f"removing crush rule '{rule}' failed: {exc.outs}")
    if remove_profile:
        task.log(f"destroying erasure coded profile '{profile}'")
        try:
            pools.delete_ec_profile(profile)
        except CephCommandError as exc:
            task.log(f"removing EC profile '{profile}' failed: {exc.outs}")


# ----- reads with PVE's fields


def pool_list(pools: CephPools) -> list[dict[str, Any]]:
    """Return every pool with the fields of PVE's `GET /nodes/{node}/ceph/pool`."""
    usage = pools.usage()
    rules = pools.crush_rules()
    autoscale = pools.autoscale_status()
    entries = []
    for raw in pools.list():
        entry = {
            key: raw[key]
            for key in ("pool", "pool_name", "size", "min_size", "pg_num", "crush_rule", "pg_autoscale_mode")
            if raw.get(key) is not None
        }
        if raw.get("application_metadata") is not None:
            entry["application_metadata"] = raw["application_metadata"]
        entry["pool"] = int(entry["pool"])
        entry["crush_rule"] = int(entry["crush_rule"])
        if autoscale:
            status = autoscale.get(raw["pool_name"])
            options = raw.get("options") or {}
            entry["autoscale_status"] = status
            entry["pg_num_final"] = (status or {}).get("pg_num_final")
            entry["pg_num_min"] = options.get("pg_num_min")
            entry["target_size"] = options.get("target_size_bytes")
            entry["target_size_ratio"] = options.get("target_size_ratio")
        if entry["crush_rule"] in rules:
            entry["crush_rule_name"] = rules[entry["crush_rule"]]
        stats = usage.get(entry["pool"])
        if stats is not None:
            entry["bytes_used"] = stats.get("bytes_used")
            entry["percent_used"] = stats.get("percent_used")
        entry["type"] = POOL_TYPES.get(raw.get("type"), "unknown")
        entries.append({key: value for key, value in entry.items() if value is not None})
    return entries


def pool_status(pools: CephPools, name: str, verbose: bool) -> dict[str, Any]:
    """Return one pool with the fields of PVE's `GET /nodes/{node}/ceph/pool/{name}/status`."""
    raw = pools.details(name)
    data: dict[str, Any] = {
        "id": raw.get("pool_id"),
        "name": name,
        "size": raw.get("size"),
        "min_size": raw.get("min_size"),
        "pg_num": raw.get("pg_num"),
        "pg_num_min": raw.get("pg_num_min"),
        "pgp_num": raw.get("pgp_num"),
        "crush_rule": raw.get("crush_rule"),
        "pg_autoscale_mode": raw.get("pg_autoscale_mode"),
        "target_size": raw.get("target_size_bytes"),
        "target_size_ratio": raw.get("target_size_ratio"),
    }
    data.update({flag: int(bool(raw[flag])) for flag in STATUS_FLAGS if flag in raw})
    if verbose:
        data["autoscale_status"] = pools.autoscale_status().get(name)
        stats = {pool["name"]: pool.get("stats") for pool in pools.mon({"prefix": "df"})["pools"]}
        data["statistics"] = stats.get(name)
        data["application_list"] = sorted(pools.applications(name))
    return {key: value for key, value in data.items() if value is not None}
