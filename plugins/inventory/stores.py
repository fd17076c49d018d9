# Copyright: (c) 2026, retail.edge maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: stores
short_description: Build a fleet inventory of stores, Proxmox nodes and workload containers from one registry
version_added: 0.1.0
author:
  - retail.edge maintainers (@retail-edge)
description:
  - Reads a store registry (YAML or CSV) that lists every store once, with its region, format, rollout wave,
    subnet, Proxmox VE node names and GPU presence.
  - Yields one host per Proxmox VE node and one host per workload container, with addresses computed from
    the store's subnet, so a fleet of hundreds of stores is one file instead of hundreds of host_vars files.
  - "Groups: C(store_<id>) per store (with a child C(store_<id>_nodes)), C(region_<region>), C(format_<format>),
    C(wave_<wave>), C(stores), C(pve_nodes), C(containers), C(gpu_stores), and one group per workload
    (C(inventory_api), C(varnish_edge), ...). A C(-) in a group name becomes C(_)."
  - "Every host gets C(retail_edge_store) (the store's registry entry with C(pve_api_host) defaulting to the
    first node's address); container hosts also get C(ansible_host) and C(retail_edge_container) (workload,
    vmid, hostname, node, address, prefix_length, cores, memory, disk, gpu)."
  - The inventory source is a YAML file whose name ends in C(stores.yml) or C(stores.yaml).
extends_documentation_fragment:
  - constructed
options:
  plugin:
    description: The name of this plugin; it must be C(retail.edge.stores).
    type: str
    required: true
    choices: [retail.edge.stores]
  stores:
    description:
      - The stores, listed in the inventory source itself. Give either O(stores) or O(registry).
      - "Each store has C(id), C(region), C(format), C(wave), C(subnet), C(nodes) (a list of Proxmox VE node
        names), and optionally C(gpu) (bool), C(pve_api_host), C(pve_api_port) and C(vars) (host variables for
        every host of that store)."
      - Jinja templates in C(vars), inline or from O(registry), are rendered when a play uses them, so treat
        the registry file with the same care as the inventory source.
    type: list
    elements: dict
  registry:
    description:
      - Path of a store registry kept outside the inventory folder, relative to the inventory source file
        unless absolute. Give either O(stores) or O(registry).
      - A YAML registry is a mapping with a C(stores) list of the same shape as O(stores).
      - "A CSV registry has the header C(id,region,format,wave,subnet,nodes,gpu); C(nodes) is a
        semicolon-separated list."
      - Keep the registry file out of the inventory folder, or Ansible tries to parse it as an inventory too.
    type: str
  formats:
    description:
      - Store formats, keyed by format name. Each format lists the workloads its stores run
        (C(workloads)) and optional container size overrides per workload (C(sizes)).
      - A store whose format is not listed here runs every workload with default sizes.
    type: dict
    default: {}
  workloads:
    description:
      - Workload containers, keyed by workload name, each with C(vmid) (the container id within the
        store's cluster), C(offset) (the host part of its address in the store subnet), C(cores), C(memory)
        (MiB), C(disk) (GiB) and C(gpu) (true when the workload uses the store's GPU if it has one).
      - Entries given here are merged over the built-in defaults, key by key.
    type: dict
    default: {}
  node_offset:
    description: Host part of the first Proxmox VE node's address in the store subnet. The next nodes follow it.
    type: int
    default: 11
  host_name_template:
    description:
      - Python format string for container hostnames, used as inventory name and Proxmox VE hostname.
      - Fields are C(store) and C(workload), where C(_) in the workload name becomes C(-).
    type: str
    default: "{store}-{workload}"
"""

EXAMPLES = r"""
# inventories/example/fleet.stores.yml
plugin: retail.edge.stores
stores:
  - id: s001
    region: eu-west
    format: supermarket
    wave: canary
    subnet: 10.20.1.0/24
    nodes: [s001-pve1, s001-pve2, s001-pve3]
    gpu: true
formats:
  express:
    workloads: [inventory_api, rules_engine, pos_cache, varnish_edge, mqtt_broker, observability]
  hypermarket:
    sizes:
      inventory_api: {cores: 4, memory: 2048}
keyed_groups:
  - key: retail_edge_store.region
    prefix: tz
compose:
  ansible_user: "'root'"

# A second inventory source, whose registry is exported from the ERP as CSV and kept
# beside the inventory folder:
#   plugin: retail.edge.stores
#   registry: ../registries/stores.csv
# with ../registries/stores.csv:
#   id,region,format,wave,subnet,nodes,gpu
#   s001,eu-west,supermarket,canary,10.20.1.0/24,s001-pve1;s001-pve2;s001-pve3,true
"""

import csv
import ipaddress
import os
import re

from ansible.errors import AnsibleParserError
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.inventory import BaseInventoryPlugin, Constructable

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    yaml = None

# Built-in workload layout of a store. Proxmox VE needs vmids unique within one cluster,
# and each store is its own cluster, so every store reuses the same vmids. Offsets place
# each container at a fixed address in the store subnet for firewall rules and monitoring.
DEFAULT_WORKLOADS = {
    "varnish_edge": {"vmid": 201, "offset": 21, "cores": 2, "memory": 1024, "disk": 8, "gpu": False},
    "inventory_api": {"vmid": 202, "offset": 22, "cores": 2, "memory": 512, "disk": 8, "gpu": False},
    "rules_engine": {"vmid": 203, "offset": 23, "cores": 1, "memory": 512, "disk": 4, "gpu": False},
    "pos_cache": {"vmid": 204, "offset": 24, "cores": 1, "memory": 512, "disk": 8, "gpu": False},
    "vision_inference": {"vmid": 205, "offset": 25, "cores": 2, "memory": 2048, "disk": 8, "gpu": True},
    "kiosk_cache": {"vmid": 206, "offset": 26, "cores": 1, "memory": 512, "disk": 8, "gpu": False},
    "mqtt_broker": {"vmid": 207, "offset": 27, "cores": 1, "memory": 256, "disk": 4, "gpu": False},
    "observability": {"vmid": 208, "offset": 28, "cores": 1, "memory": 1024, "disk": 16, "gpu": False},
}
WORKLOAD_KEYS = frozenset(["vmid", "offset", "cores", "memory", "disk", "gpu"])
STORE_REQUIRED = ("id", "region", "format", "wave", "subnet", "nodes")
STORE_KEYS = frozenset([*STORE_REQUIRED, "gpu", "vars", "pve_api_host", "pve_api_port"])
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class InventoryModule(BaseInventoryPlugin, Constructable):
    """Inventory plugin that expands a store registry into nodes and workload containers."""

    NAME = "retail.edge.stores"

    # ansible-core 2.19 treats strings from inventory plugins as untrusted, so a store var such as
    # "{{ retail_edge_store.id }}-pos" would reach a play as literal text. The registry is a local file
    # that operators maintain like the inventory source, so the plugin trusts it and templates render.
    trusted_by_default = True

    def verify_file(self, path):
        if not super().verify_file(path):
            return False
        return path.endswith(("stores.yml", "stores.yaml"))

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)

        stores, source = self._stores(path)
        workloads = merge_workloads(self.get_option("workloads"))
        formats = self.get_option("formats")
        validate_formats(formats, workloads)

        seen_ids = set()
        for index, store in enumerate(stores, start=1):
            where = f"store #{index} of {source}"
            validate_store(store, where)
            if store["id"] in seen_ids:
                raise AnsibleParserError(f"duplicate store id {store['id']!r} in {where}: store ids must be unique")
            seen_ids.add(store["id"])
            self._add_store(store, workloads, formats.get(store["format"], {}), where)

    def _stores(self, path):
        inline = self.get_option("stores")
        registry_path = self.get_option("registry")
        if (inline is None) == (registry_path is None):
            raise AnsibleParserError(f"{path}: give exactly one of 'stores' (a list) or 'registry' (a file path)")
        if inline is not None:
            return inline, path
        if not os.path.isabs(registry_path):
            registry_path = os.path.join(os.path.dirname(path), registry_path)
        return load_registry(registry_path), registry_path

    def _add_store(self, store, workloads, store_format, where):
        store_id = store["id"]
        network = parse_subnet(store["subnet"], where)
        strict = self.get_option("strict")

        store_group = self.inventory.add_group(group_name("store", store_id))
        parents = [group_name("region", store["region"]), group_name("format", store["format"])]
        for parent in (*parents, group_name("wave", store["wave"]), "stores"):
            self.inventory.add_group(parent)
            self.inventory.add_child(parent, store_group)
        if store.get("gpu"):
            self.inventory.add_group("gpu_stores")
            self.inventory.add_child("gpu_stores", store_group)

        node_names = list(store["nodes"])
        node_addresses = [
            address_in(network, self.get_option("node_offset") + position, where) for position in range(len(node_names))
        ]
        store_facts = {
            "id": store_id,
            "region": store["region"],
            "format": store["format"],
            "wave": store["wave"],
            "subnet": str(network),
            "nodes": node_names,
            "gpu": bool(store.get("gpu", False)),
            "pve_api_host": store.get("pve_api_host") or node_addresses[0],
            "pve_api_port": int(store.get("pve_api_port", 8006)),
        }
        common_vars = {"retail_edge_store": store_facts, **store.get("vars", {})}

        nodes_group = self.inventory.add_group(group_name("store", f"{store_id}_nodes"))
        self.inventory.add_child(store_group, nodes_group)
        self.inventory.add_group("pve_nodes")
        for name, address in zip(node_names, node_addresses, strict=True):
            self.inventory.add_host(name, group=nodes_group)
            self.inventory.add_host(name, group="pve_nodes")
            self._set_vars(name, {**common_vars, "ansible_host": address}, strict)

        enabled = store_format.get("workloads") or list(workloads)
        sizes = store_format.get("sizes", {})
        self.inventory.add_group("containers")
        for workload in enabled:
            spec = {**workloads[workload], **sizes.get(workload, {})}
            # Proxmox VE container hostnames are DNS names, which allow '-' but not '_'.
            hostname = self.get_option("host_name_template").format(store=store_id, workload=workload.replace("_", "-"))
            address = address_in(network, spec["offset"], where)
            container = {
                "workload": workload,
                "vmid": spec["vmid"],
                "hostname": hostname,
                "node": node_names[(spec["vmid"] - 1) % len(node_names)],
                "address": address,
                "prefix_length": network.prefixlen,
                "cores": spec["cores"],
                "memory": spec["memory"],
                "disk": spec["disk"],
                "gpu": bool(spec["gpu"] and store.get("gpu", False)),
            }
            self.inventory.add_host(hostname, group=store_group)
            self.inventory.add_group(workload)
            self.inventory.add_host(hostname, group=workload)
            self.inventory.add_host(hostname, group="containers")
            host_vars = {**common_vars, "ansible_host": address, "retail_edge_container": container}
            self._set_vars(hostname, host_vars, strict)

    def _set_vars(self, host, variables, strict):
        for key, value in variables.items():
            self.inventory.set_variable(host, key, value)
        hostvars = self.inventory.get_host(host).get_vars()
        self._set_composite_vars(self.get_option("compose"), hostvars, host, strict=strict)
        self._add_host_to_composed_groups(self.get_option("groups"), hostvars, host, strict=strict)
        self._add_host_to_keyed_groups(self.get_option("keyed_groups"), hostvars, host, strict=strict)


def group_name(prefix, value):
    """Return the group name for prefix and value, with '-' turned into '_' as Ansible group names require."""
    return f"{prefix}_{value}".replace("-", "_")


def load_registry(path):
    """Read the store registry at path (YAML or CSV) and return its list of store dicts."""
    if not os.path.isfile(path):
        raise AnsibleParserError(f"store registry {path!r} not found: set 'registry' to an existing YAML or CSV file")
    try:
        with open(path, encoding="utf-8") as handle:
            if path.endswith(".csv"):
                return [csv_row_to_store(row) for row in csv.DictReader(handle)]
            data = yaml.safe_load(handle)
    except (OSError, yaml.YAMLError, csv.Error) as exc:
        raise AnsibleParserError(f"cannot read store registry {path!r}: {to_native(exc)}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("stores"), list):
        raise AnsibleParserError(f"store registry {path!r} must be a mapping with a 'stores' list")
    return data["stores"]


def csv_row_to_store(row):
    """Convert one CSV row to the store dict shape of a YAML registry."""
    store = {key.strip(): (value or "").strip() for key, value in row.items() if key}
    store["nodes"] = [name.strip() for name in store.get("nodes", "").split(";") if name.strip()]
    store["gpu"] = store.get("gpu", "").lower() in ("1", "true", "yes")
    return store


def merge_workloads(overrides):
    """Return the built-in workload layout with the user's per-workload overrides merged in."""
    merged = {name: dict(spec) for name, spec in DEFAULT_WORKLOADS.items()}
    for name, spec in (overrides or {}).items():
        if not isinstance(spec, dict):
            raise AnsibleParserError(f"workloads.{name} must be a mapping of {sorted(WORKLOAD_KEYS)}")
        unknown = set(spec) - WORKLOAD_KEYS
        if unknown:
            raise AnsibleParserError(
                f"workloads.{name} has unknown keys {sorted(unknown)}; valid keys: {sorted(WORKLOAD_KEYS)}"
            )
        base = merged.get(name)
        if base is None:
            missing = WORKLOAD_KEYS - set(spec) - {"gpu"}
            if missing:
                raise AnsibleParserError(f"new workload {name!r} needs {sorted(missing)}")
            base = {"gpu": False}
        merged[name] = {**base, **spec}

    vmids = {}
    offsets = {}
    for name, spec in merged.items():
        for key, seen in (("vmid", vmids), ("offset", offsets)):
            other = seen.setdefault(spec[key], name)
            if other != name:
                raise AnsibleParserError(
                    f"workloads {other!r} and {name!r} share {key} {spec[key]}; give each workload its own"
                )
        if not 100 <= int(spec["vmid"]) <= 999999999:
            raise AnsibleParserError(
                f"workloads.{name}.vmid {spec['vmid']} is out of range: Proxmox VE accepts 100 to 999999999"
            )
    return merged


def validate_formats(formats, workloads):
    """Raise AnsibleParserError when a format names a workload that is not defined."""
    for format_name, spec in formats.items():
        for workload in list((spec or {}).get("workloads") or []) + list((spec or {}).get("sizes") or {}):
            if workload not in workloads:
                raise AnsibleParserError(
                    f"format {format_name!r} names unknown workload {workload!r}; known: {sorted(workloads)}"
                )


def validate_store(store, where):
    """Raise AnsibleParserError naming the field when a registry entry is incomplete or malformed."""
    if not isinstance(store, dict):
        raise AnsibleParserError(f"{where} must be a mapping, got {type(store).__name__}")
    missing = [key for key in STORE_REQUIRED if not store.get(key)]
    if missing:
        raise AnsibleParserError(f"{where} is missing {missing}; every store needs {list(STORE_REQUIRED)}")
    unknown = set(store) - STORE_KEYS
    if unknown:
        raise AnsibleParserError(f"{where} has unknown keys {sorted(unknown)}; valid keys: {sorted(STORE_KEYS)}")
    for key in ("id", "region", "format", "wave"):
        value = str(store[key])
        if not NAME_PATTERN.match(value):
            raise AnsibleParserError(
                f"{where}: {key} {value!r} is invalid because it becomes a group name; "
                "use lower-case letters, digits, '-' and '_'"
            )
        store[key] = value
    if not isinstance(store["nodes"], list) or not all(isinstance(name, str) and name for name in store["nodes"]):
        raise AnsibleParserError(f"{where}: nodes must be a non-empty list of node names")
    if not isinstance(store.get("vars", {}), dict):
        raise AnsibleParserError(f"{where}: vars must be a mapping of host variables")


def parse_subnet(value, where):
    """Return the IPv4 network of a store, or raise AnsibleParserError naming the value."""
    try:
        return ipaddress.IPv4Network(str(value), strict=True)
    except ValueError as exc:
        raise AnsibleParserError(
            f"{where}: subnet {value!r} is invalid ({exc}); give a network address with prefix, such as 10.20.1.0/24"
        ) from exc


def address_in(network, offset, where):
    """Return the address at host offset in network, or raise when the subnet is too small."""
    if offset < 1 or offset >= network.num_addresses - 1:
        raise AnsibleParserError(
            f"{where}: host offset {offset} does not fit subnet {network} ({network.num_addresses - 2} host addresses)"
        )
    return str(network.network_address + offset)
