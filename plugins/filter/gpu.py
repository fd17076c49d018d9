# Copyright: (c) 2026, retail.edge maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: gpu_lxc_devices
short_description: Turn a GPU found by gpu_facts into Proxmox VE container device entries
version_added: 0.1.0
author:
  - retail.edge maintainers (@retail-edge)
description:
  - Takes one GPU from the C(gpus) list of M(retail.edge.gpu_facts) and the module's C(shared_device_nodes), and
    returns the C(dev[n]) entries that give a container that GPU, in the form that the C(devices) option of
    M(retail.edge.pve_lxc) takes.
  - The result lists the GPU's own nodes first, then the nodes that every container using a GPU of that vendor needs.
options:
  _input:
    description: One element of the C(gpus) list returned by M(retail.edge.gpu_facts).
    type: dict
    required: true
  shared:
    description: The C(shared_device_nodes) dict returned by M(retail.edge.gpu_facts).
    type: dict
    default: {}
  gid:
    description: Group id that owns the device nodes inside the container, such as the C(render) or C(video) group.
    type: int
  mode:
    description: Octal access mode of the device nodes inside the container.
    type: str
"""

EXAMPLES = r"""
- name: Give container 205 the node's first GPU through the Proxmox VE API
  retail.edge.pve_lxc:
    vmid: 205
    devices: "{{ node_gpus.gpus[0] | retail.edge.gpu_lxc_devices(node_gpus.shared_device_nodes, gid=44) }}"
"""

RETURN = r"""
_value:
  description: Device entries with C(path) and, where given, C(gid) and C(mode).
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError


def gpu_lxc_devices(gpu, shared=None, gid=None, mode=None):
    """Return pve_lxc device entries for one GPU and the vendor's shared device nodes."""
    if not isinstance(gpu, dict) or "device_nodes" not in gpu:
        raise AnsibleFilterError("gpu_lxc_devices expects one element of gpu_facts' gpus list, with device_nodes")
    if gpu.get("driver") == "vfio-pci":
        raise AnsibleFilterError(
            f"GPU {gpu.get('pci_address')} is bound to vfio-pci for VM passthrough; containers need the vendor driver"
        )
    nodes = list(gpu["device_nodes"]) + list((shared or {}).get(gpu.get("vendor"), []))
    if not nodes:
        raise AnsibleFilterError(
            f"GPU {gpu.get('pci_address')} has no device nodes on the host: load its driver (see pve_gpu_host role)"
        )
    entries = []
    for node in nodes:
        entry = {"path": node["path"]}
        if gid is not None:
            entry["gid"] = int(gid)
        if mode is not None:
            entry["mode"] = str(mode)
        entries.append(entry)
    return entries


class FilterModule:
    """GPU filters of retail.edge."""

    def filters(self):
        return {"gpu_lxc_devices": gpu_lxc_devices}
