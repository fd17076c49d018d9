#!/usr/bin/python
# Copyright: (c) 2025, retail.edge maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: pve_lxc_info
short_description: List Proxmox VE LXC containers with their parsed configuration
version_added: 0.1.0
description:
  - Lists the LXC containers of a Proxmox VE cluster from C(/cluster/resources), filtered by node, id,
    host name, tag or pool, and reads the configuration of each one.
  - Each configuration comes back twice. RV(containers[].config) is the configuration as PVE returns it,
    and RV(containers[].parsed) has property strings split into dicts, booleans as booleans, sizes
    normalized (V(8192M) becomes V(8G)) and tags, name servers and search domains as lists.
author:
  - retail.edge maintainers (@retail-edge)
extends_documentation_fragment:
  - retail.edge.pve
  - retail.edge.pve.ACTIONGROUP_PVE
  - retail.edge.attributes
  - retail.edge.attributes.INFO_MODULE
options:
  node:
    description: Only containers on this node.
    type: str
  vmid:
    description: Only the container with this id.
    type: int
  hostname:
    description: Only containers with this host name.
    type: str
  tag:
    description: Only containers carrying this tag (compared without regard to case).
    type: str
  pool:
    description: Only containers in this resource pool.
    type: str
  config:
    description:
      - Read the configuration of each container (one API request each). With V(false) only the cluster
        resource list is read and RV(containers[].config) and RV(containers[].parsed) are empty.
    type: bool
    default: true
seealso:
  - module: retail.edge.pve_lxc
"""

EXAMPLES = r"""
- name: List the store's containers tagged pos
  retail.edge.pve_lxc_info:
    api_host: pve1.store042.example.net
    api_token_id: auditor@pve!readonly
    api_token_secret: "{{ vault_pve_readonly_secret }}"
    ca_path: /etc/retail-edge/pve-root-ca.pem
    tag: pos
  register: pos_containers

- name: Show the bridge of each container's first interface
  ansible.builtin.debug:
    msg: "{{ item.name }}: {{ item.parsed.net0.bridge | default('none') }}"
  loop: "{{ pos_containers.containers }}"
  loop_control:
    label: "{{ item.vmid }}"
"""

RETURN = r"""
containers:
  description: Matching containers, ordered by id.
  returned: success
  type: list
  elements: dict
  contains:
    vmid:
      description: Container id.
      type: int
      sample: 201
    name:
      description: Host name of the container.
      type: str
      sample: inventory-api
    node:
      description: Node the container is on.
      type: str
      sample: pve1
    status:
      description: V(running) or V(stopped).
      type: str
      sample: running
    template:
      description: Whether the container is a template.
      type: bool
      sample: false
    pool:
      description: Resource pool of the container, if any.
      type: str
      sample: store042
    tags:
      description: Tags of the container.
      type: list
      elements: str
      sample: [inventory, retail]
    config:
      description: Configuration as PVE returns it (without C(digest)).
      type: dict
      sample: {memory: 2048, features: "keyctl=1,nesting=1"}
    parsed:
      description:
        - Configuration with property strings as dicts, booleans as booleans, sizes normalized and
          tags, name servers and search domains as lists. Keys this collection does not model stay as
          PVE returns them.
      type: dict
      sample:
        memory: 2048
        features: {keyctl: true, nesting: true}
        rootfs: {volume: "local-lvm:vm-201-disk-0", size: 8G}
        tags: [inventory, retail]
api_calls:
  description: Number of API requests the run sent after login.
  returned: success
  type: int
  sample: 4
"""

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
from ansible_collections.retail.edge.plugins.module_utils._pve_lxc_config import (
    Volume,
    config_key,
    format_size,
    parse_config,
)


def argument_spec() -> dict[str, Any]:
    spec: dict[str, Any] = dict(PVE_AUTH_SPEC)
    spec.update(
        node={"type": "str"},
        vmid={"type": "int"},
        hostname={"type": "str"},
        tag={"type": "str"},
        pool={"type": "str"},
        config={"type": "bool", "default": True},
    )
    return spec


def split_tags(value: Any) -> list[str]:
    """Split a PVE tag list (`a;b`, as /cluster/resources returns it) into a list."""
    if not value:
        return []
    return [tag for tag in str(value).replace(",", ";").replace(" ", ";").split(";") if tag]


def to_plain(value: Any) -> Any:
    """Turn a parsed configuration value into plain YAML types (dicts, lists, strings, numbers)."""
    if isinstance(value, dict):
        return {key: to_plain(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [to_plain(item) for item in value]
    if isinstance(value, Volume):
        return value.text
    return value


def parsed_view(raw: dict[str, Any]) -> dict[str, Any]:
    """Return the parsed configuration with sizes written as PVE writes them (8G)."""
    parsed = parse_config(raw)
    for name, value in parsed.items():
        if isinstance(value, dict) and isinstance(value.get("size"), int) and config_key(name) is not None:
            value["size"] = format_size(value["size"])
    return to_plain(parsed)


def matches(entry: dict[str, Any], params: dict[str, Any]) -> bool:
    if entry.get("type") != "lxc":
        return False
    if params["node"] is not None and entry.get("node") != params["node"]:
        return False
    if params["vmid"] is not None and int(entry.get("vmid", -1)) != params["vmid"]:
        return False
    if params["hostname"] is not None and entry.get("name") != params["hostname"]:
        return False
    if params["pool"] is not None and entry.get("pool") != params["pool"]:
        return False
    tag = params["tag"]
    return tag is None or tag.lower() in {item.lower() for item in split_tags(entry.get("tags"))}


def describe(client: PveClient, entry: dict[str, Any], read_config: bool) -> dict[str, Any]:
    vmid = int(entry["vmid"])
    info: dict[str, Any] = {
        "vmid": vmid,
        "name": entry.get("name"),
        "node": entry.get("node"),
        "status": entry.get("status"),
        "template": str(entry.get("template", 0)) in ("1", "True", "true"),
        "pool": entry.get("pool"),
        "tags": split_tags(entry.get("tags")),
        "config": {},
        "parsed": {},
    }
    if read_config:
        raw = client.get(f"nodes/{entry['node']}/lxc/{vmid}/config")
        raw.pop("digest", None)
        info["config"] = raw
        info["parsed"] = parsed_view(raw)
    return info


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        mutually_exclusive=PVE_AUTH_MUTUALLY_EXCLUSIVE,
        required_one_of=PVE_AUTH_REQUIRED_ONE_OF,
        required_together=PVE_AUTH_REQUIRED_TOGETHER,
    )
    try:
        client = PveClient(module)
        resources = client.get("cluster/resources", type="vm")
        selected = sorted((item for item in resources if matches(item, module.params)), key=lambda i: int(i["vmid"]))
        containers = [describe(client, entry, module.params["config"]) for entry in selected]
    except PveError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, containers=containers, api_calls=client.calls)


if __name__ == "__main__":
    main()
