"""The lab configuration of the PVE double: cluster nodes, users, API tokens, storages, templates, tasks."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lab.pve.formats import NODE_NAME_RE, STORAGE_CONTENT_TYPES, STORAGE_ID_RE, VOLUME_ID_RE

USER_RE = re.compile(r"[^\s:/@!]+@[A-Za-z][A-Za-z0-9.\-_]+")
TOKEN_ID_RE = re.compile(rf"({USER_RE.pattern})!([A-Za-z][A-Za-z0-9.\-_]+)")
GIB = 1024**3


class ConfigError(ValueError):
    """The lab configuration file is invalid; the message names the key and the expected form."""


@dataclass(frozen=True)
class Storage:
    storage: str
    type: str = "dir"
    content: tuple[str, ...] = ("rootdir", "images")
    shared: bool = False
    total: int = 100 * GIB
    nodes: tuple[str, ...] | None = None  # None: available on every node

    def on_node(self, node: str) -> bool:
        return self.nodes is None or node in self.nodes


@dataclass(frozen=True)
class Token:
    token_id: str  # user@realm!name
    secret: str
    privsep: bool = True

    @property
    def user(self) -> str:
        return self.token_id.split("!", 1)[0]


@dataclass(frozen=True)
class Fault:
    """An injected task fault: tasks whose fields equal every `match` entry fail, or hang, or take longer."""

    match: dict[str, str]
    fail: str | None = None
    hang: bool = False
    after_s: float | None = None
    times: int | None = None  # None: every matching task

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Fault:
        if not isinstance(raw, dict):
            raise ConfigError(f"a fault must be a mapping with 'match' and 'fail' or 'hang', got {raw!r}")
        unknown = set(raw) - {"match", "fail", "hang", "after_s", "times"}
        if unknown:
            raise ConfigError(f"unknown fault keys {sorted(unknown)}; valid: match, fail, hang, after_s, times")
        match = raw.get("match") or {}
        if not isinstance(match, dict) or not match:
            raise ConfigError("fault 'match' must be a non-empty mapping such as {type: vzcreate}")
        fail = raw.get("fail")
        hang = bool(raw.get("hang", False))
        after_s = raw.get("after_s")
        if fail is None and not hang and after_s is None:
            raise ConfigError("a fault needs 'fail: MESSAGE', 'hang: true' or 'after_s: SECONDS'")
        times = raw.get("times")
        return cls(
            match={str(key): str(value) for key, value in match.items()},
            fail=None if fail is None else str(fail),
            hang=hang,
            after_s=None if after_s is None else float(after_s),
            times=None if times is None else int(times),
        )

    def matches(self, fields: dict[str, str]) -> bool:
        return all(fields.get(key) == value for key, value in self.match.items())

    def to_dict(self) -> dict[str, Any]:
        return {"match": self.match, "fail": self.fail, "hang": self.hang, "after_s": self.after_s, "times": self.times}


@dataclass
class LabConfig:
    cluster_name: str = "lab"
    nodes: list[str] = field(default_factory=lambda: ["pve1"])
    users: dict[str, str] = field(default_factory=lambda: {"root@pam": "lab-root-password"})
    tokens: dict[str, Token] = field(default_factory=dict)
    storages: dict[str, Storage] = field(default_factory=dict)
    templates: list[str] = field(default_factory=list)
    pools: list[str] = field(default_factory=list)
    task_durations: dict[str, float] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    backend: str = "memory"
    backend_options: dict[str, Any] = field(default_factory=dict)
    persist_interval_s: float = 0.05
    extensions: list[str] = field(default_factory=list)
    # Settings of each extension, keyed by its short name (`ceph` for lab.pve.ceph); the extension checks them.
    extension_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    version: str = "9.1.3"
    node_cpus: int = 8
    node_memory: int = 32 * GIB

    def task_duration(self, task_type: str) -> float:
        return float(self.task_durations.get(task_type, self.task_durations.get("default", 0.05)))

    @property
    def root_password(self) -> str:
        return self.users["root@pam"]


DEFAULT_STORAGES = {
    "local": Storage("local", "dir", ("vztmpl", "iso", "backup", "rootdir", "snippets"), False, 100 * GIB),
    "local-lvm": Storage("local-lvm", "lvmthin", ("rootdir", "images"), False, 500 * GIB),
}


def load_config(path: Path) -> LabConfig:
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return parse_config(raw)


def parse_config(raw: dict[str, Any]) -> LabConfig:
    known = {
        "cluster",
        "nodes",
        "users",
        "tokens",
        "storages",
        "templates",
        "pools",
        "tasks",
        "faults",
        "backend",
        "backend_options",
        "persist",
        "extensions",
        "extension_settings",
        "version",
        "node_resources",
    }
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"unknown top-level keys {sorted(unknown)}; valid keys: {sorted(known)}")

    config = LabConfig()
    config.cluster_name = str(raw.get("cluster", config.cluster_name))
    config.nodes = _parse_nodes(raw.get("nodes", config.nodes))
    config.users = _parse_users(raw.get("users", config.users))
    config.tokens = _parse_tokens(raw.get("tokens", {}), config.users)
    config.storages = _parse_storages(raw.get("storages"), config.nodes)
    config.templates = _parse_templates(raw.get("templates", []), config.storages)
    config.pools = [str(pool) for pool in raw.get("pools") or []]
    tasks = raw.get("tasks") or {}
    config.task_durations = {str(key): float(value) for key, value in (tasks.get("durations") or {}).items()}
    config.faults = [Fault.from_dict(item) for item in raw.get("faults") or []]
    config.backend = str(raw.get("backend", "memory"))
    config.backend_options = dict(raw.get("backend_options") or {})
    config.persist_interval_s = float((raw.get("persist") or {}).get("interval_s", config.persist_interval_s))
    config.extensions = [str(item) for item in raw.get("extensions") or []]
    config.extension_settings = _parse_extension_settings(raw.get("extension_settings"))
    config.version = str(raw.get("version", config.version))
    resources = raw.get("node_resources") or {}
    config.node_cpus = int(resources.get("cpus", config.node_cpus))
    config.node_memory = int(resources.get("memory_gib", config.node_memory // GIB)) * GIB
    return config


def _parse_extension_settings(raw: Any) -> dict[str, dict[str, Any]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(value, dict) for value in raw.values()):
        raise ConfigError("'extension_settings' must map extension names to mappings, such as {ceph: {conf: PATH}}")
    return {str(name): dict(value) for name, value in raw.items()}


def _parse_nodes(raw: Any) -> list[str]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError("'nodes' must be a non-empty list of node names such as [pve1, pve2, pve3]")
    for node in raw:
        if not isinstance(node, str) or not NODE_NAME_RE.fullmatch(node):
            raise ConfigError(f"node name {node!r} is invalid: use letters, digits and '-' (e.g. store-0001-pve1)")
    return list(raw)


def _parse_users(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict) or "root@pam" not in raw:
        raise ConfigError("'users' must map user ids to passwords and contain root@pam")
    users: dict[str, str] = {}
    for user, entry in raw.items():
        if not USER_RE.fullmatch(str(user)):
            raise ConfigError(f"user id {user!r} is invalid: use NAME@REALM such as ops@pve")
        password = entry.get("password") if isinstance(entry, dict) else entry
        if not isinstance(password, str) or not password:
            raise ConfigError(f"user {user}: the password must be a non-empty string")
        users[str(user)] = password
    return users


def _parse_tokens(raw: Any, users: dict[str, str]) -> dict[str, Token]:
    tokens: dict[str, Token] = {}
    for token_id, entry in (raw or {}).items():
        match = TOKEN_ID_RE.fullmatch(str(token_id))
        if match is None:
            raise ConfigError(f"token id {token_id!r} is invalid: use USER@REALM!TOKENID such as root@pam!ci")
        if match.group(1) not in users:
            raise ConfigError(f"token {token_id}: user {match.group(1)} is not listed under 'users'")
        secret = entry.get("secret") if isinstance(entry, dict) else entry
        if not isinstance(secret, str) or not secret:
            raise ConfigError(f"token {token_id}: 'secret' must be a non-empty string")
        privsep = bool(entry.get("privsep", True)) if isinstance(entry, dict) else True
        tokens[str(token_id)] = Token(str(token_id), secret, privsep)
    return tokens


def _parse_storages(raw: Any, nodes: list[str]) -> dict[str, Storage]:
    if raw is None:
        return dict(DEFAULT_STORAGES)
    if not isinstance(raw, dict):
        raise ConfigError("'storages' must map storage ids to {type, content, shared, size_gib}")
    storages: dict[str, Storage] = {}
    for storage_id, raw_entry in raw.items():
        entry = raw_entry or {}
        if not STORAGE_ID_RE.fullmatch(str(storage_id)):
            raise ConfigError(f"storage id {storage_id!r} is invalid: use letters, digits, '-', '_' and '.'")
        content = tuple(entry.get("content", ("rootdir", "images")))
        bad = [item for item in content if item not in STORAGE_CONTENT_TYPES]
        if bad:
            raise ConfigError(f"storage {storage_id}: unknown content {bad}; valid: {list(STORAGE_CONTENT_TYPES)}")
        storage_nodes = entry.get("nodes")
        unknown_nodes = sorted(set(storage_nodes or ()) - set(nodes))
        if unknown_nodes:
            raise ConfigError(f"storage {storage_id}: nodes {unknown_nodes} are not listed under 'nodes'")
        storages[str(storage_id)] = Storage(
            storage=str(storage_id),
            type=str(entry.get("type", "dir")),
            content=content,
            shared=bool(entry.get("shared", False)),
            total=int(float(entry.get("size_gib", 100)) * GIB),
            nodes=None if storage_nodes is None else tuple(storage_nodes),
        )
    return storages


def _parse_templates(raw: Any, storages: dict[str, Storage]) -> list[str]:
    templates: list[str] = []
    for volid in raw or []:
        match = VOLUME_ID_RE.fullmatch(str(volid))
        if match is None or not match.group(2).startswith("vztmpl/"):
            raise ConfigError(f"template {volid!r} is invalid: use STORAGE:vztmpl/FILE such as local:vztmpl/x.tar.zst")
        if match.group(1) not in storages:
            raise ConfigError(f"template {volid}: storage {match.group(1)} is not listed under 'storages'")
        templates.append(str(volid))
    return templates
