#!/usr/bin/python
# Copyright: (c) 2025, retail.edge maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: pve_lxc
short_description: Declare a Proxmox VE LXC container and make PVE match it
version_added: 0.1.0
description:
  - Creates, reconfigures, starts, stops, restarts, converts to a template or removes one LXC container
    through the Proxmox VE API.
  - The declaration is compared with the stored configuration by meaning, not by text. Key order in
    property strings, V(8G) against V(8192M), V(1) against V(true), and the order and case of tags make
    no difference, and a key left out of a property string means its PVE default.
  - Options that take a PVE property string (O(netif), O(mounts), O(devices), O(rootfs), O(features),
    O(startup)) accept either that string, exactly as C(pct config) prints it, or a dict of its keys.
    Both forms are validated before any API call, so a typo fails the task with the valid form in the
    message instead of reaching PVE.
  - A running container is updated in place. Changes that PVE cannot apply to a running container stay
    pending until the next start and are returned in RV(pending_keys); the container is restarted only
    when O(restart_on_pending=true).
  - A root filesystem or mount point grows with the resize API when a larger size is declared. Volumes
    never shrink and never move; declaring a smaller size or another volume fails with the reason.
  - Keys that the declaration leaves out stay as they are, unless O(delete_undeclared=true).
  - Check mode reads everything a real run reads and reports the same C(changed), RV(changed_keys) and
    diff without changing anything.
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
      - RV(pending_keys) in check mode is predicted from the keys PVE 8 applies to a running container,
        plus what is already pending; after a real change it is read back from PVE.
  diff_mode:
    support: full
    details:
      - The diff shows the configuration keys before and after, as PVE stores them. Volumes that a run
        allocates appear in PVE's C(STORAGE:SIZE_IN_GiB) request form, since their names are known only
        afterwards, and a clone shows the volume names of its source. A root password set at creation
        shows as C(********).
options:
  vmid:
    description:
      - Container id, from 100 to 999999999.
      - Identifies the container. When not set, the container is looked up by O(hostname), and a new one
        gets the next free id of the cluster.
    type: int
  hostname:
    description:
      - Host name of the container, which PVE also shows as its name.
      - Without O(vmid) it identifies the container; more than one container with this name is an error.
      - With O(vmid) it is a setting like any other and is changed when it differs.
    type: str
  node:
    description:
      - Cluster node to create the container on.
      - An existing container is found on whichever node it runs, since it may have migrated; when that is
        not this node the module warns and works on the container where it is.
    type: str
  state:
    description:
      - V(present) creates the container when missing (stopped) and reconciles its configuration, without
        changing whether it runs.
      - V(started) and V(stopped) also start it or shut it down. A running container is shut down before
        its configuration changes, so nothing stays pending.
      - V(restarted) reconciles, then reboots the container (or starts it when stopped); it always reports
        a change.
      - V(template) reconciles, shuts the container down when it runs and converts it to a template. A
        container that is already a template is left alone.
      - V(absent) removes the container and its volumes, stopping it first when it runs.
    type: str
    choices: [present, started, stopped, restarted, absent, template]
    default: present
  ostemplate:
    description:
      - OS template volume to create the container from, such as
        V(local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst).
      - Used only when the container does not exist. Mutually exclusive with O(clone).
    type: str
  clone:
    description:
      - Id of the container or template to clone when the container does not exist.
      - The clone gets O(hostname), O(description) and O(pool) from the clone call and every other
        declared setting from a reconcile right after it.
    type: int
  clone_full:
    description:
      - Make a full copy of the volumes of O(clone) instead of a linked clone.
      - PVE always copies fully when the source is not a template; for templates it defaults to a linked
        clone where the storage supports it.
    type: bool
  storage:
    description:
      - Storage for the root filesystem of a new container (with O(disk_size)) and for the volumes of a
        full clone. PVE defaults to V(local).
    type: str
  disk_size:
    description:
      - Size of the root filesystem, with a unit, such as V(8G). Short for O(rootfs=STORAGE:SIZE).
      - A larger size than the stored one grows the volume; a smaller one fails.
      - Mutually exclusive with O(rootfs).
    type: str
  rootfs:
    description:
      - "Root filesystem as a PVE property string or a dict of its keys, such as
        V(local-lvm:8,mountoptions=noatime) or C({volume: local-lvm:8, mountoptions: [noatime]})."
      - The volume is either C(STORAGE:SIZE_IN_GiB) (a new volume, or for an existing container any volume
        on that storage), an existing volume id, or left out. A dict may give C(storage) and C(size) in
        place of C(volume).
      - The size (from C(STORAGE:SIZE_IN_GiB) or C(size)) grows the volume when larger than the stored
        one; a smaller size fails, because PVE cannot shrink a volume.
      - "Valid form: C([volume=]<volume> [,acl=<1|0>] [,mountoptions=<opt[;opt...]>] [,quota=<1|0>]
        [,replicate=<1|0>] [,ro=<1|0>] [,shared=<1|0>] [,size=<DiskSize>])."
    type: raw
  cores:
    description: Number of CPU cores assigned to the container.
    type: int
  cpulimit:
    description: CPU time limit in cores (V(1.5) is one and a half cores); V(0) means no limit.
    type: float
  cpuunits:
    description: CPU weight relative to other guests (cgroup v2 clamps it to 1-10000).
    type: int
  memory:
    description: Memory limit in MiB.
    type: int
  swap:
    description: Swap limit in MiB.
    type: int
  netif:
    description:
      - "Network interfaces, as a dict from C(net0)...C(net31) to a PVE property string or a dict of its
        keys, such as C({net0: 'name=eth0,bridge=vmbr0,ip=198.51.100.10/24,gw=198.51.100.1'})."
      - C(hwaddr) and C(type) are compared only when declared, because PVE fills them in itself.
      - "Valid form, as C(pct config) prints it: name=<string> [,bridge=<bridge>] [,firewall=<1|0>]
        [,gw=<GatewayIPv4>] [,gw6=<GatewayIPv6>] [,host-managed=<1|0>] [,hwaddr=<XX:XX:XX:XX:XX:XX>]
        [,ip=<(IPv4/CIDR|dhcp|manual)>] [,ip6=<(IPv6/CIDR|auto|dhcp|manual)>] [,link_down=<1|0>]
        [,mtu=<integer>] [,rate=<mbps>] [,tag=<integer>] [,trunks=<vlanid[;vlanid...]>] [,type=<veth>]"
    type: dict
    aliases: [net]
  mounts:
    description:
      - "Mount points, as a dict from C(mp0)...C(mp255) to a PVE property string or a dict of its keys,
        such as C({mp0: 'local-lvm:16,mp=/srv/data,backup=1'})."
      - A new mount point with C(STORAGE:SIZE_IN_GiB) allocates a volume; a dict may give C(storage) and
        C(size) instead. An absolute host path makes a bind mount, which only V(root@pam) with a password
        may set.
      - Sizes grow as for O(rootfs). A changed volume is refused; bind mounts may change their host path.
      - "Valid form: C([volume=]<volume> ,mp=<Path> [,acl=<1|0>] [,backup=<1|0>] [,keepattrs=<1|0>]
        [,mountoptions=<opt[;opt...]>] [,quota=<1|0>] [,replicate=<1|0>] [,ro=<1|0>] [,shared=<1|0>]
        [,size=<DiskSize>])."
    type: dict
    aliases: [mp]
  devices:
    description:
      - "Device passthrough, as a dict from C(dev0)...C(dev255) to a PVE property string or a dict of its
        keys, such as C({dev0: '/dev/ttyUSB0,mode=0660,gid=20'})."
      - PVE accepts device passthrough only from V(root@pam) logged in with a password; with any other
        login the module fails before it changes anything.
      - "Valid form: C([path=]<Path> [,deny-write=<1|0>] [,gid=<integer>] [,mode=<Octal access mode>]
        [,uid=<integer>])."
    type: dict
    aliases: [dev]
  features:
    description:
      - "Feature flags as a PVE property string (V(nesting=1,keyctl=1)), a dict (C({nesting: true})) or a list
        of C(key=value) items."
      - The declared set replaces the stored one, so dropping a flag turns it off. V({}) or an empty string
        removes every flag.
      - Flags other than C(nesting) can only be changed by V(root@pam) logged in with a password.
      - "Valid form: C([force_rw_sys=<1|0>] [,fuse=<1|0>] [,keyctl=<1|0>] [,mknod=<1|0>]
        [,mount=<fstype;fstype;...>] [,nesting=<1|0>])."
    type: raw
  tags:
    description:
      - Tags of the container. Order and case make no difference; an empty list removes all tags.
    type: list
    elements: str
  onboot:
    description: Start the container when its node boots.
    type: bool
  startup:
    description:
      - Boot order and delays as a PVE property string (V(order=2,up=30)) or a dict of its keys.
      - "Valid form: C([[order=]\\d+] [,up=\\d+] [,down=\\d+])."
    type: raw
  description:
    description:
      - Notes shown in the PVE web interface. An empty string removes them. Trailing whitespace is ignored
        when comparing.
    type: str
  nameserver:
    description: DNS servers, in order. An empty list removes them, so the container uses the host's.
    type: list
    elements: str
  searchdomain:
    description: DNS search domains, in order. An empty list removes them.
    type: list
    elements: str
  unprivileged:
    description:
      - Run the container as an unprivileged (user-namespaced) container.
      - Applied when the container is created, where it defaults to V(true). PVE cannot change it later,
        so a different value for an existing container fails.
    type: bool
  ssh_public_keys:
    description:
      - SSH public keys for root, one per item. Applied only when the container is created.
    type: list
    elements: str
  password:
    description:
      - Root password inside the container. Applied only when the container is created; PVE has no API to
        change it later.
    type: str
  protection:
    description: Protect the container from removal and from changes to its volumes.
    type: bool
  timezone:
    description: Time zone inside the container, such as V(Europe/Berlin), or V(host) to follow the node.
    type: str
  pool:
    description:
      - Resource pool to add a new container to.
      - Pool membership of an existing container is not changed; the module warns when it differs.
    type: str
  delete_undeclared:
    description:
      - Delete configuration keys that the declaration leaves out, so the container carries exactly what is
        declared.
      - Only keys this module can declare are removed - C(net*), C(mp*), C(dev*), C(features), C(tags),
        C(startup), C(description), C(nameserver), C(searchdomain), C(cores), C(cpulimit), C(cpuunits),
        C(onboot), C(protection), C(timezone). Memory, swap, hostname, the root filesystem and unused
        volumes are never removed.
      - A removed mount point keeps its volume as C(unusedN).
      - When V(false), RV(undeclared_keys) lists what would be removed.
    type: bool
    default: false
  restart_on_pending:
    description:
      - Reboot a running container when changes stay pending, so they take effect now.
      - Also applies pending changes left by earlier runs.
    type: bool
    default: false
  force_stop:
    description:
      - Stop the container at once instead of shutting it down cleanly, where the state needs it stopped.
    type: bool
    default: false
  shutdown_timeout:
    description: Seconds a clean shutdown may take before the shutdown task fails.
    type: int
    default: 60
  purge:
    description:
      - With O(state=absent), also remove the container from backup jobs, replication jobs and HA.
    type: bool
    default: false
  timeout:
    description:
      - Seconds to wait for each PVE task (create, clone, resize, start, shutdown, remove).
      - When a task runs longer the module fails with the task id; the task goes on in PVE.
    type: int
    default: 300
notes:
  - A failed PVE task fails the module as soon as the task ends, with the last lines of the task log in the
    message.
seealso:
  - module: retail.edge.pve_lxc_info
  - name: Proxmox VE container configuration (pct.conf)
    description: Meaning of every configuration key.
    link: https://pve.proxmox.com/wiki/Manual:_pct.conf
"""

EXAMPLES = r"""
- name: Declare the store's inventory API container
  retail.edge.pve_lxc:
    api_host: pve1.store042.example.net
    api_user: root@pam
    api_password: "{{ vault_pve_root_password }}"
    ca_path: /etc/retail-edge/pve-root-ca.pem
    hostname: inventory-api
    vmid: 201
    node: pve1
    ostemplate: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst
    storage: local-lvm
    disk_size: 8G
    cores: 2
    memory: 2048
    swap: 512
    netif:
      net0: name=eth0,bridge=vmbr0,ip=198.51.100.21/24,gw=198.51.100.1
    mounts:
      mp0: {storage: local-lvm, size: 16G, mp: /var/lib/inventory, backup: true}
    features: nesting=1
    tags: [retail, inventory]
    onboot: true
    startup: order=2,up=30
    state: started

- name: Same declaration through module_defaults and an API token
  module_defaults:
    group/retail.edge.pve:
      api_host: pve1.store042.example.net
      api_token_id: ansible@pve!provision
      api_token_secret: "{{ vault_pve_token_secret }}"
      ca_path: /etc/retail-edge/pve-root-ca.pem
  block:
    - name: Grow the root filesystem and apply pending changes now
      retail.edge.pve_lxc:
        hostname: inventory-api
        disk_size: 12G
        features: {nesting: true}
        restart_on_pending: true

- name: Pass a USB scanner through (needs root@pam with a password)
  retail.edge.pve_lxc:
    api_host: pve1.store042.example.net
    api_user: root@pam
    api_password: "{{ vault_pve_root_password }}"
    vmid: 204
    devices:
      dev0: {path: /dev/ttyACM0, mode: "0660", gid: 20}

- name: Remove everything the declaration does not mention
  retail.edge.pve_lxc:
    api_host: pve1.store042.example.net
    api_token_id: ansible@pve!provision
    api_token_secret: "{{ vault_pve_token_secret }}"
    vmid: 205
    netif:
      net0: name=eth0,bridge=vmbr0,ip=dhcp
    tags: [kiosk]
    delete_undeclared: true

- name: Remove a container
  retail.edge.pve_lxc:
    api_host: pve1.store042.example.net
    api_token_id: ansible@pve!provision
    api_token_secret: "{{ vault_pve_token_secret }}"
    hostname: old-kiosk-cache
    state: absent
    purge: true
"""

RETURN = r"""
vmid:
  description: Id of the container (for a create in check mode, the id it would get).
  returned: success
  type: int
  sample: 201
node:
  description: Node the container is on.
  returned: success
  type: str
  sample: pve1
config:
  description:
    - Configuration as PVE returns it after the run (the prediction in check mode); empty after removal.
  returned: success
  type: dict
  sample:
    hostname: inventory-api
    memory: 2048
    net0: name=eth0,bridge=vmbr0,hwaddr=BC:24:11:2A:5F:01,ip=dhcp,type=veth
changed_keys:
  description: Configuration keys the run set, deleted or resized.
  returned: success
  type: list
  elements: str
  sample: [memory, mp1, rootfs]
pending_keys:
  description:
    - Keys whose change waits for the next start of the container (see O(restart_on_pending)).
  returned: success
  type: list
  elements: str
  sample: [features]
undeclared_keys:
  description:
    - Keys set on the container that the declaration leaves out and O(delete_undeclared) would remove.
  returned: success
  type: list
  elements: str
  sample: [net1, description]
status:
  description: Whether the container runs after the run (V(running) or V(stopped)); V(absent) after removal.
  returned: success
  type: str
  sample: running
template:
  description: Whether the container is a template after the run.
  returned: success
  type: bool
  sample: false
tasks:
  description: UPIDs of the PVE tasks the run started, in order.
  returned: success
  type: list
  elements: str
  sample: ["UPID:pve1:000A1B2C:0012D3E4:6630A1B2:vzcreate:201:root@pam:"]
api_calls:
  description: Number of API requests the run sent after login.
  returned: success
  type: int
  sample: 3
failed_task:
  description: UPID of the PVE task that failed or timed out, when that is why the module failed.
  returned: failure
  type: str
  sample: "UPID:pve1:000A1B2C:0012D3E4:6630A1B2:vzcreate:201:root@pam:"
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
    PveTaskError,
    PveTaskTimeout,
)
from ansible_collections.retail.edge.plugins.module_utils._pve_lxc_config import (
    ConfigError,
    Plan,
    as_returned,
    Volume,
    format_gib,
    indexed_key_limit,
    parse_config,
    parse_size,
    plan_update,
    predict_config,
    predict_pending,
    require_key,
    root_only_reasons,
)

SSH_KEY_RE = re.compile(r"^(ssh-[a-z0-9-]+|ecdsa-sha2-[a-z0-9-]+|sk-[a-z0-9@.-]+) [A-Za-z0-9+/]+={0,3}( .*)?$")
OSTEMPLATE_RE = re.compile(r"^([a-z][a-z0-9\-_.]*[a-z0-9]:\S+|/\S+)$", re.IGNORECASE)
MIN_VMID = 100
MAX_VMID = 999_999_999
MASK = "********"

# Module option -> configuration key, for options that map one to one.
SCALAR_OPTIONS = {
    "cores": "cores",
    "cpulimit": "cpulimit",
    "cpuunits": "cpuunits",
    "memory": "memory",
    "swap": "swap",
    "onboot": "onboot",
    "protection": "protection",
    "timezone": "timezone",
    "description": "description",
    "unprivileged": "unprivileged",
    "features": "features",
    "startup": "startup",
    "tags": "tags",
    "nameserver": "nameserver",
    "searchdomain": "searchdomain",
    "hostname": "hostname",
}
INDEXED_OPTIONS = {"netif": "net", "mounts": "mp", "devices": "dev"}


def argument_spec() -> dict[str, Any]:
    spec: dict[str, Any] = dict(PVE_AUTH_SPEC)
    spec.update(
        vmid={"type": "int"},
        hostname={"type": "str"},
        node={"type": "str"},
        state={
            "type": "str",
            "default": "present",
            "choices": ["present", "started", "stopped", "restarted", "absent", "template"],
        },
        ostemplate={"type": "str"},
        clone={"type": "int"},
        clone_full={"type": "bool"},
        storage={"type": "str"},
        disk_size={"type": "str"},
        rootfs={"type": "raw"},
        cores={"type": "int"},
        cpulimit={"type": "float"},
        cpuunits={"type": "int"},
        memory={"type": "int"},
        swap={"type": "int"},
        netif={"type": "dict", "aliases": ["net"]},
        mounts={"type": "dict", "aliases": ["mp"]},
        devices={"type": "dict", "aliases": ["dev"]},
        features={"type": "raw"},
        tags={"type": "list", "elements": "str"},
        onboot={"type": "bool"},
        startup={"type": "raw"},
        description={"type": "str"},
        nameserver={"type": "list", "elements": "str"},
        searchdomain={"type": "list", "elements": "str"},
        unprivileged={"type": "bool"},
        ssh_public_keys={"type": "list", "elements": "str", "no_log": False},
        password={"type": "str", "no_log": True},
        protection={"type": "bool"},
        timezone={"type": "str"},
        pool={"type": "str"},
        delete_undeclared={"type": "bool", "default": False},
        restart_on_pending={"type": "bool", "default": False},
        force_stop={"type": "bool", "default": False},
        shutdown_timeout={"type": "int", "default": 60},
        purge={"type": "bool", "default": False},
        timeout={"type": "int", "default": 300},
    )
    return spec


# --- declaration: everything validated before the first API call --------------------------


class Declaration:
    """The module options turned into parsed configuration values, validated without the API."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params
        self.vmid: int | None = params["vmid"]
        self.hostname: str | None = params["hostname"]
        self.node: str | None = params["node"]
        self.state: str = params["state"]
        self.config: dict[str, Any] = {}
        self._validate_identity()
        if self.state != "absent":
            self._parse_config()

    def _validate_identity(self) -> None:
        if self.vmid is not None and not MIN_VMID <= self.vmid <= MAX_VMID:
            raise ConfigError(f"vmid {self.vmid} is invalid: PVE guest ids are integers from {MIN_VMID} to {MAX_VMID}")
        if self.vmid is None and not self.hostname:
            raise ConfigError("set vmid or hostname, so the module knows which container to manage")
        clone = self.params["clone"]
        if clone is not None and not MIN_VMID <= clone <= MAX_VMID:
            raise ConfigError(f"clone {clone} is invalid: PVE guest ids are integers from {MIN_VMID} to {MAX_VMID}")
        for option in ("timeout", "shutdown_timeout"):
            if self.params[option] <= 0:
                raise ConfigError(f"{option} must be a positive number of seconds, got {self.params[option]}")

    def _parse_config(self) -> None:
        params = self.params
        for option, name in SCALAR_OPTIONS.items():
            value = params[option]
            if value is None:
                continue
            if option == "features" and isinstance(value, list):
                value = ",".join(str(item) for item in value)
            key = require_key(name)
            self.config[name] = key.parse(value, option)

        for option, prefix in INDEXED_OPTIONS.items():
            for index_key, declared in sorted((params[option] or {}).items()):
                name = self._indexed_name(option, prefix, str(index_key))
                value = declared
                if prefix == "mp" and isinstance(declared, dict):
                    value = self._storage_shorthand(declared, f"{option}.{name}")
                key = require_key(name)
                self.config[name] = key.parse(value, f"{option}.{name}")

        rootfs = params["rootfs"]
        if rootfs is not None:
            if isinstance(rootfs, dict):
                rootfs = self._storage_shorthand(rootfs, "rootfs")
            self.config["rootfs"] = require_key("rootfs").parse(rootfs, "rootfs")
        elif params["disk_size"] is not None:
            try:
                size = parse_size(params["disk_size"])
            except ValueError as exc:
                raise ConfigError(f"disk_size: {exc}") from None
            self.config["rootfs"] = {"size": size}

        self._validate_create_options()

    def _validate_create_options(self) -> None:
        params = self.params
        if params["password"] is not None and len(params["password"]) < 5:
            raise ConfigError("password is too short: PVE requires at least 5 characters")
        for index, line in enumerate(params["ssh_public_keys"] or []):
            if not SSH_KEY_RE.match(line.strip()):
                raise ConfigError(
                    f"ssh_public_keys[{index}] is not an OpenSSH public key; give one key per item in the form "
                    "'ssh-ed25519 AAAA... comment'"
                )
        ostemplate = params["ostemplate"]
        if ostemplate is not None and not OSTEMPLATE_RE.match(ostemplate):
            raise ConfigError(
                f"ostemplate {ostemplate!r} is not a template volume; use STORAGE:vztmpl/FILE, such as "
                "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
            )

    @staticmethod
    def _indexed_name(option: str, prefix: str, index_key: str) -> str:
        limit = indexed_key_limit(prefix)
        match = re.fullmatch(rf"{prefix}(0|[1-9]\d*)", index_key)
        if not match or int(match.group(1)) >= limit:
            raise ConfigError(
                f"{option}: key {index_key!r} is invalid; use {prefix}0 to {prefix}{limit - 1}, "
                f"such as {{{prefix}0: ...}}"
            )
        return index_key

    @staticmethod
    def _storage_shorthand(value: dict[str, Any], option: str) -> dict[str, Any]:
        """Turn {storage: S, size: 8G} into PVE's volume=S:8 allocation syntax."""
        if "storage" not in value:
            return value
        value = dict(value)
        storage = value.pop("storage")
        if value.get("volume") is not None:
            raise ConfigError(f"{option}: give either storage (with size) or volume, not both")
        if value.get("size") is None:
            raise ConfigError(f"{option}: storage {storage!r} needs a size, such as size: 8G")
        try:
            size = parse_size(value.pop("size"))
        except ValueError as exc:
            raise ConfigError(f"{option}: {exc}") from None
        value["volume"] = f"{storage}:{format_gib(size)}"
        return value

    # --- create parameters -------------------------------------------------------------

    def create_config(self) -> dict[str, str]:
        """Return the configuration keys of a create request, formatted for the API."""
        formatted: dict[str, str] = {}
        for name, value in self.config.items():
            key = require_key(name)
            if name == "rootfs":
                rootfs = self._rootfs_for_create(value)
                if rootfs is not None:
                    formatted[name] = rootfs
            elif not key.is_empty(value):
                formatted[name] = key.format(value)
        formatted.setdefault("unprivileged", "1")
        return formatted

    def _rootfs_for_create(self, value: dict[str, Any]) -> str | None:
        key = require_key("rootfs")
        if value.get("volume") is not None:
            return key.format(value)
        size = value.get("size")
        if size is None:
            raise ConfigError(
                "rootfs: a new container needs the root filesystem size; declare disk_size (such as 8G) "
                "or rootfs: STORAGE:SIZE_IN_GiB"
            )
        storage = self.params["storage"] or "local"
        values = {k: v for k, v in value.items() if k != "size"}
        values["volume"] = Volume.parse(f"{storage}:{format_gib(size)}")
        return key.format(values)


# --- reconciliation -------------------------------------------------------------------------


class LxcManager:
    """Make one container match a Declaration, reading before every write."""

    def __init__(self, module: AnsibleModule, client: PveClient, declaration: Declaration) -> None:
        self.module = module
        self.client = client
        self.decl = declaration
        self.params = module.params
        self.check_mode = module.check_mode
        self.changed = False
        self.vmid: int | None = declaration.vmid
        self.node: str | None = None
        self.status = "absent"
        self.template = False
        self.config: dict[str, Any] = {}
        self.changed_keys: list[str] = []
        self.pending_keys: list[str] = []
        self.undeclared_keys: list[str] = []
        self.tasks: list[str] = []
        self.diff: dict[str, Any] = {"before": {}, "after": {}}
        self.messages: list[str] = []

    # --- entry point ---------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        resources = self.client.get("cluster/resources", type="vm")
        entry = self._locate(resources)

        if self.decl.state == "absent":
            self._ensure_absent(entry)
        elif entry is None:
            self._create(resources)
            self._ensure_power_state()
        else:
            self._adopt(entry)
            self._reconcile()
            self._ensure_power_state()
        return self.result()

    def result(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "changed": self.changed,
            "vmid": self.vmid,
            "node": self.node,
            "config": self.config,
            "changed_keys": self.changed_keys,
            "pending_keys": self.pending_keys,
            "undeclared_keys": self.undeclared_keys,
            "status": self.status,
            "template": self.template,
            "tasks": self.tasks,
            "api_calls": self.client.calls,
            "msg": "; ".join(self.messages) or f"container {self.vmid} is as declared",
        }
        if self.module._diff:
            result["diff"] = self.diff
        return result

    def _path(self, suffix: str = "") -> str:
        return f"nodes/{self.node}/lxc/{self.vmid}{suffix}"

    def _task(self, method: str, suffix: str, **params: Any) -> None:
        upid = self.client.run_task(method, self._path(suffix), self.params["timeout"], params)
        if upid:
            self.tasks.append(upid)

    # --- finding the container ------------------------------------------------------------

    def _locate(self, resources: list[dict[str, Any]]) -> dict[str, Any] | None:
        guests = [item for item in resources if item.get("type") in ("lxc", "qemu")]
        if self.decl.vmid is not None:
            matches = [item for item in guests if int(item.get("vmid", -1)) == self.decl.vmid]
            if not matches:
                return None
            entry = matches[0]
            if entry["type"] != "lxc":
                raise PveError(
                    f"vmid {self.decl.vmid} is a QEMU virtual machine ({entry.get('name')} on node "
                    f"{entry.get('node')}), not a container; choose another vmid"
                )
            return entry

        named = [item for item in guests if item["type"] == "lxc" and item.get("name") == self.decl.hostname]
        if len(named) > 1:
            found = ", ".join(f"{item['vmid']} on {item.get('node')}" for item in named)
            raise PveError(
                f"hostname {self.decl.hostname!r} matches {len(named)} containers ({found}); set vmid to choose one"
            )
        return named[0] if named else None

    def _adopt(self, entry: dict[str, Any]) -> None:
        self.vmid = int(entry["vmid"])
        self.node = str(entry["node"])
        self.status = str(entry.get("status", "stopped"))
        self.template = str(entry.get("template", 0)) in ("1", "True", "true")
        if self.decl.node and self.decl.node != self.node:
            self.module.warn(
                f"container {self.vmid} is on node {self.node}, not on {self.decl.node} as declared; "
                "it is managed where it is (this module does not migrate containers)"
            )
        pool = self.params["pool"]
        if pool is not None and entry.get("pool") != pool:
            self.module.warn(
                f"container {self.vmid} is in pool {entry.get('pool')!r}, not {pool!r}; this module sets the pool "
                "only when it creates a container"
            )

    # --- create and clone -----------------------------------------------------------------

    def _create(self, resources: list[dict[str, Any]]) -> None:
        if self.params["clone"] is not None:
            self._clone(resources)
            return
        if not self.params["ostemplate"]:
            raise PveError(
                f"container {self.decl.vmid or self.decl.hostname} does not exist; set ostemplate (or clone) "
                "to create it"
            )
        self.node = self._creation_node()
        self.vmid = self.decl.vmid or int(self.client.get("cluster/nextid"))
        config = self.decl.create_config()
        self._check_root_only(self.decl.config, [], {})

        request: dict[str, Any] = dict(config)
        request.update(
            vmid=self.vmid,
            ostemplate=self.params["ostemplate"],
            storage=self.params["storage"],
            pool=self.params["pool"],
            password=self.params["password"],
        )
        if self.params["ssh_public_keys"]:
            request["ssh-public-keys"] = "\n".join(self.params["ssh_public_keys"]) + "\n"

        after = {name: as_returned(name, text) for name, text in sorted(config.items())}
        if self.params["password"] is not None:
            after["password"] = MASK
        self._record_change({}, after, sorted(config))
        self.messages.append(f"created container {self.vmid} on {self.node}")
        if self.check_mode:
            self.config = after
        else:
            upid = self.client.run_task("POST", f"nodes/{self.node}/lxc", self.params["timeout"], request)
            if upid:
                self.tasks.append(upid)
            self.config = self._read_config()
        self.status = "stopped"

    def _creation_node(self) -> str:
        if not self.decl.node:
            raise PveError(
                f"container {self.decl.vmid or self.decl.hostname} does not exist and node is not set; "
                "set node to the cluster node to create it on"
            )
        return self.decl.node

    def _clone(self, resources: list[dict[str, Any]]) -> None:
        source_id = self.params["clone"]
        sources = [item for item in resources if item.get("type") == "lxc" and int(item.get("vmid", -1)) == source_id]
        if not sources:
            raise PveError(f"clone source {source_id} is not a container of this cluster")
        source_node = str(sources[0]["node"])
        self.node = self.decl.node or source_node
        self.vmid = self.decl.vmid or int(self.client.get("cluster/nextid"))

        source_config = self.client.get(f"nodes/{source_node}/lxc/{source_id}/config")
        base = {key: value for key, value in source_config.items() if key not in ("digest", "template")}
        for name in ("hostname", "description"):
            if name in self.decl.config:
                base[name] = require_key(name).format(self.decl.config[name])
        plan = self._plan(base)
        after = predict_config(base, plan)
        self._record_change({}, after, sorted(set(after) | set(plan.changed_keys)))
        self.messages.append(f"cloned container {source_id} to {self.vmid} on {self.node}")
        if self.check_mode:
            # NOTE: check mode does not test whether the source volumes can reach another node
            # (PVE clones across nodes only from shared storage); the real run fails there.
            self.config = after
            self.status = "stopped"
            return

        request = {
            "newid": self.vmid,
            "hostname": self.decl.config.get("hostname"),
            "description": self.params["description"] or None,
            "pool": self.params["pool"],
            "storage": self.params["storage"],
            "full": None if self.params["clone_full"] is None else int(self.params["clone_full"]),
            "target": self.node if self.node != source_node else None,
        }
        upid = self.client.run_task(
            "POST", f"nodes/{source_node}/lxc/{source_id}/clone", self.params["timeout"], request
        )
        if upid:
            self.tasks.append(upid)
        self.status = "stopped"
        current = self.client.get(self._path("/config"))
        self._apply(self._plan(current), current)
        self.config = self._read_config()

    # --- reconcile an existing container ----------------------------------------------------

    def _plan(self, current: dict[str, Any]) -> Plan:
        plan = plan_update(self.decl.config, current, delete_undeclared=self.params["delete_undeclared"])
        if plan.errors:
            raise PveError(f"container {self.vmid}: " + "; ".join(plan.errors))
        changes = {name: self.decl.config[name] for name in plan.set}
        self._check_root_only(changes, plan.delete, parse_config(current))
        self.undeclared_keys = [] if self.params["delete_undeclared"] else plan.undeclared
        return plan

    def _check_root_only(self, changes: dict[str, Any], deleted: list[str], current: dict[str, Any]) -> None:
        reasons = root_only_reasons(changes, deleted, current)
        credentials = self.client.credentials
        if reasons and not credentials.is_root_password_login:
            how = "an API token" if credentials.is_token else "a password"
            raise PveError(
                f"container {self.vmid or self.decl.hostname}: {', '.join(reasons)} can only be set by root@pam "
                f"logged in with a password, and PVE rejects it for {credentials.login} ({how}). "
                "Run this task with api_user: root@pam and api_password"
            )

    def _reconcile(self) -> None:
        if self.decl.state in ("stopped", "template") and self.status == "running":
            self._stop()

        current = self.client.get(self._path("/config"))
        plan = self._plan(current)
        after = predict_config(current, plan)
        before = {key: value for key, value in current.items() if key != "digest"}
        if not plan.empty:
            self._record_change(before, after, plan.changed_keys)
            self.messages.append(f"changed {', '.join(plan.changed_keys)}")
        else:
            self.diff = {"before": before, "after": after}

        if self.check_mode:
            self.config = after
            if self.status == "running":
                already = self._read_pending()
                self.pending_keys = sorted(set(already) | set(predict_pending(plan)))
            return

        self._apply(plan, current)
        self.config = self._read_config() if not plan.empty else before
        if self.status == "running":
            self.pending_keys = self._read_pending()

    def _apply(self, plan: Plan, current: dict[str, Any]) -> None:
        if plan.set or plan.delete:
            self._task(
                "PUT",
                "/config",
                digest=current.get("digest"),
                delete=",".join(plan.delete) or None,
                **plan.set,
            )
        for resize in plan.resize:
            self._task("PUT", "/resize", disk=resize.disk, size=resize.size_text)

    def _read_config(self) -> dict[str, Any]:
        config = self.client.get(self._path("/config"))
        return {key: value for key, value in config.items() if key != "digest"}

    def _read_pending(self) -> list[str]:
        pending = []
        for item in self.client.get(self._path("/pending")) or []:
            if "pending" in item or str(item.get("delete", "0")) not in ("0", ""):
                pending.append(str(item["key"]))
        return sorted(pending)

    def _record_change(self, before: dict[str, Any], after: dict[str, Any], keys: list[str]) -> None:
        self.changed = True
        self.changed_keys = keys
        self.diff = {
            "before": before,
            "after": after,
            "before_header": f"CT {self.vmid} config",
            "after_header": f"CT {self.vmid} config",
        }

    # --- power state ------------------------------------------------------------------------

    def _ensure_power_state(self) -> None:
        state = self.decl.state
        if state in ("started", "restarted") and self.template:
            raise PveError(f"container {self.vmid} is a template; templates cannot be started")
        if state in ("started", "restarted") and self.status != "running":
            self._power("/status/start", "started", "running")
        elif state == "restarted":
            self._power("/status/reboot", "rebooted", "running")
        elif state in ("started", "present"):
            if self.status == "running" and self.pending_keys and self.params["restart_on_pending"]:
                self._power("/status/reboot", "rebooted to apply pending changes", "running")
        elif state == "template" and not self.template:
            if self.status == "running":
                self._stop()
            self.changed = True
            self.messages.append("converted to a template")
            self.template = True
            if self.check_mode:
                self.config = {**self.config, "template": 1}
            else:
                self._task("POST", "/template")
                self.config = self._read_config()

    def _power(self, suffix: str, message: str, status: str) -> None:
        self.changed = True
        self.messages.append(message)
        if not self.check_mode:
            self._task("POST", suffix)
        self.status = status
        self.pending_keys = []

    def _stop(self) -> None:
        if self.params["force_stop"]:
            self._power("/status/stop", "stopped", "stopped")
        else:
            self.changed = True
            self.messages.append("shut down")
            if not self.check_mode:
                self._task("POST", "/status/shutdown", timeout=self.params["shutdown_timeout"], forceStop=0)
            self.status = "stopped"
            self.pending_keys = []

    # --- removal ----------------------------------------------------------------------------

    def _ensure_absent(self, entry: dict[str, Any] | None) -> None:
        if entry is None:
            self.messages.append(f"container {self.decl.vmid or self.decl.hostname} is absent")
            return
        self._adopt(entry)
        current = self.client.get(self._path("/config"))
        before = {key: value for key, value in current.items() if key != "digest"}
        self._record_change(before, {}, [])
        self.messages.append(f"removed container {self.vmid} from {self.node}")
        running = self.status == "running"
        if not self.check_mode:
            self._task(
                "DELETE",
                "",
                purge=int(self.params["purge"]),
                force=1 if running else None,
                **{"destroy-unreferenced-disks": 1},
            )
        self.status = "absent"


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        mutually_exclusive=[*PVE_AUTH_MUTUALLY_EXCLUSIVE, ("ostemplate", "clone"), ("rootfs", "disk_size")],
        required_one_of=[*PVE_AUTH_REQUIRED_ONE_OF, ("vmid", "hostname")],
        required_together=PVE_AUTH_REQUIRED_TOGETHER,
    )
    try:
        declaration = Declaration(module.params)
    except ConfigError as exc:
        module.fail_json(msg=str(exc))

    manager = None
    try:
        client = PveClient(module)
        manager = LxcManager(module, client, declaration)
        result = manager.run()
    except (PveError, ConfigError) as exc:
        # Only what is known for certain: the planned keys and the diff may not have been applied.
        partial: dict[str, Any] = {}
        if manager is not None:
            partial.update(vmid=manager.vmid, node=manager.node, tasks=manager.tasks, api_calls=manager.client.calls)
        if isinstance(exc, PveTaskError | PveTaskTimeout):
            partial["failed_task"] = exc.upid
        module.fail_json(msg=str(exc), changed=bool(manager and manager.tasks), **partial)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
