#!/usr/bin/python
# Copyright: (c) 2026, retail.edge maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: lxc_gpu
short_description: Pass GPU device nodes into an LXC container with cgroup rules and bind mounts
version_added: 0.1.0
author:
  - retail.edge maintainers (@retail-edge)
description:
  - Writes C(lxc.cgroup2.devices.allow) and C(lxc.mount.entry) lines for a list of character devices into a
    container's configuration file, inside a block marked with C(# BEGIN) and C(# END) comments, and keeps every
    other line of the file byte for byte.
  - Runs on the Proxmox VE node and edits C(/etc/pve/lxc/<vmid>.conf), or edits a plain LXC configuration file
    given with O(config_file). Majors and minors come from M(retail.edge.gpu_facts).
  - This is the raw-config way. On Proxmox VE 8.1 and newer the API's C(dev[n]) entries do the same without
    editing files; use the O(retail.edge.pve_lxc#module:devices) option with entries from the
    C(retail.edge.gpu_lxc_devices) filter for that. The API way needs a C(root@pam) password login.
  - Proxmox VE writes C(#) lines as the container description when it rewrites a configuration, which moves the
    markers to the top of the file. The module then finds its lines by content, removes the stray markers and
    writes the block again, and reports that as a change.
  - The container reads its configuration when it starts, so a changed block takes effect at the next start.
attributes:
  check_mode:
    support: full
    description: Check mode computes the new file and reports the change without writing it.
  diff_mode:
    support: full
    description: The diff shows the configuration file before and after.
options:
  vmid:
    description:
      - Proxmox VE container id; the file is O(config_dir)/<vmid>.conf.
      - Give O(vmid) or O(config_file).
    type: int
  config_dir:
    description: Folder of Proxmox VE container configurations.
    type: path
    default: /etc/pve/lxc
  config_file:
    description:
      - Path of the configuration file to edit, instead of O(config_dir)/O(vmid).conf.
      - For a plain LXC container this is C(/var/lib/lxc/<name>/config); set O(syntax=lxc) with it.
    type: path
  syntax:
    description:
      - "C(pve) writes C(key: value) lines as Proxmox VE does; C(lxc) writes C(key = value) lines as LXC does."
    type: str
    choices: [pve, lxc]
    default: pve
  cgroup:
    description:
      - Version of the cgroup device controller the node uses, which decides between C(lxc.cgroup2.devices.allow)
        and C(lxc.cgroup.devices.allow) lines.
      - C(auto) reads it from the node, C(v2) when C(/sys/fs/cgroup/cgroup.controllers) exists. Proxmox VE 7 and
        newer boot with cgroup v2 only.
    type: str
    choices: [auto, v1, v2]
    default: auto
  devices:
    description:
      - Character devices to pass through. Use the C(device_nodes) and C(shared_device_nodes) of
        M(retail.edge.gpu_facts).
      - With O(state=absent) the list is ignored and the whole block is removed.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path of the device node on the host, such as C(/dev/nvidia0).
        type: str
        required: true
      major:
        description: Major number of the device.
        type: int
        required: true
      minor:
        description: Minor number of the device; omit it to allow every minor of the major.
        type: int
      access:
        description: cgroup access letters, a combination of C(r), C(w) and C(m).
        type: str
        default: rwm
  state:
    description: C(present) writes the block; C(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: Discover the node's GPUs
  retail.edge.gpu_facts:
  register: node_gpus

- name: Pass the first NVIDIA GPU into container 205
  retail.edge.lxc_gpu:
    vmid: 205
    devices: "{{ node_gpus.gpus[0].device_nodes + node_gpus.shared_device_nodes.nvidia }}"

- name: Take the GPU away again
  retail.edge.lxc_gpu:
    vmid: 205
    state: absent
"""

RETURN = r"""
config_file:
  description: Path of the configuration file that was compared and, unless in check mode, written.
  returned: always
  type: str
  sample: /etc/pve/lxc/205.conf
lines:
  description: The lines of the managed block, markers excluded.
  returned: always
  type: list
  elements: str
  sample:
    - "lxc.cgroup2.devices.allow: c 195:0 rwm"
    - "lxc.mount.entry: /dev/nvidia0 dev/nvidia0 none bind,optional,create=file"
"""

import os
import re
import tempfile

from ansible.module_utils.basic import AnsibleModule

BEGIN_MARKER = "# BEGIN retail.edge lxc_gpu (managed block, changes are overwritten)"
END_MARKER = "# END retail.edge lxc_gpu"
DEVICE_PATH_PATTERN = re.compile(r"^/dev/[A-Za-z0-9._/-]+$")
ACCESS_PATTERN = re.compile(r"^[rwm]{1,3}$")
SECTION_PATTERN = re.compile(r"^\[[^\]]+\]\s*$")


def block_lines(devices, syntax, cgroup="v2"):
    """Return the cgroup and mount lines for devices, sorted so the same set always gives the same block."""
    separator = ": " if syntax == "pve" else " = "
    allow_key = "lxc.cgroup2.devices.allow" if cgroup == "v2" else "lxc.cgroup.devices.allow"
    allow = []
    mounts = []
    for device in sorted(devices, key=lambda item: item["path"]):
        minor = "*" if device.get("minor") is None else str(device["minor"])
        allow.append(f"{allow_key}{separator}c {device['major']}:{minor} {device['access']}")
        target = device["path"].lstrip("/")
        mounts.append(f"lxc.mount.entry{separator}{device['path']} {target} none bind,optional,create=file")
    return list(dict.fromkeys(allow)) + mounts


def split_main_section(lines):
    """Split a config into the main section's lines and the rest (snapshots, pending changes)."""
    for index, line in enumerate(lines):
        if SECTION_PATTERN.match(line.rstrip("\n")):
            return lines[:index], lines[index:]
    return lines, []


def render(text, managed, state):
    """Return the configuration text with the managed block replaced, added or removed."""
    lines = text.splitlines(keepends=True)
    main, rest = split_main_section(lines)
    stripped = [line.rstrip("\n") for line in main]
    managed_set = set(managed)

    kept = []
    inside = False
    for raw, line in zip(main, stripped, strict=True):
        if line == BEGIN_MARKER:
            inside = True
            continue
        if line == END_MARKER:
            inside = False
            continue
        # Lines of an earlier block that Proxmox VE separated from their markers are found by content.
        if inside or line in managed_set:
            continue
        kept.append(raw)

    if state == "present" and managed:
        if kept and not kept[-1].endswith("\n"):
            kept[-1] += "\n"
        # The block goes after the main section's last key, before the blank line that separates sections.
        end = len(kept)
        while end > 0 and not kept[end - 1].strip():
            end -= 1
        block = [BEGIN_MARKER + "\n", *(line + "\n" for line in managed), END_MARKER + "\n"]
        kept[end:end] = block
    return "".join(kept + rest)


def validate_devices(module, devices):
    for device in devices:
        if not DEVICE_PATH_PATTERN.match(device["path"]):
            module.fail_json(msg=f"devices: path {device['path']!r} is invalid; give an absolute path below /dev")
        if not ACCESS_PATTERN.match(device["access"]) or len(set(device["access"])) != len(device["access"]):
            module.fail_json(msg=f"devices: access {device['access']!r} for {device['path']} is invalid; use r, w, m")
        if device["major"] < 0 or (device.get("minor") is not None and device["minor"] < 0):
            module.fail_json(msg=f"devices: {device['path']} has a negative major or minor number")


def write_atomically(path, content):
    directory = os.path.dirname(path) or "."
    mode = os.stat(path).st_mode & 0o7777 if os.path.exists(path) else 0o640
    fd, temp_path = tempfile.mkstemp(dir=directory, prefix=".lxc_gpu.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
        os.chmod(temp_path, mode)
        os.replace(temp_path, path)
    except BaseException:
        if os.path.exists(temp_path):
            os.unlink(temp_path)
        raise


def main():
    module = AnsibleModule(
        argument_spec={
            "vmid": {"type": "int"},
            "config_dir": {"type": "path", "default": "/etc/pve/lxc"},
            "config_file": {"type": "path"},
            "syntax": {"type": "str", "choices": ["pve", "lxc"], "default": "pve"},
            "devices": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {
                    "path": {"type": "str", "required": True},
                    "major": {"type": "int", "required": True},
                    "minor": {"type": "int"},
                    "access": {"type": "str", "default": "rwm"},
                },
            },
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "cgroup": {"type": "str", "choices": ["auto", "v1", "v2"], "default": "auto"},
        },
        required_one_of=[("vmid", "config_file")],
        mutually_exclusive=[("vmid", "config_file")],
        supports_check_mode=True,
    )
    params = module.params
    if params["vmid"] is not None and not 100 <= params["vmid"] <= 999999999:
        module.fail_json(msg=f"vmid {params['vmid']} is out of range: Proxmox VE container ids are 100 to 999999999")
    path = params["config_file"] or os.path.join(params["config_dir"], f"{params['vmid']}.conf")
    if not os.path.isfile(path):
        module.fail_json(msg=f"container configuration {path} not found: check vmid, and run the module on the node")

    validate_devices(module, params["devices"])
    if params["state"] == "present" and not params["devices"]:
        module.fail_json(msg="devices is empty: list the device nodes to pass, or use state=absent to remove them")
    cgroup = params["cgroup"]
    if cgroup == "auto":
        cgroup = "v2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "v1"
    managed = block_lines(params["devices"], params["syntax"], cgroup) if params["state"] == "present" else []

    with open(path, encoding="utf-8") as handle:
        before = handle.read()
    after = render(before, managed, params["state"])
    changed = before != after

    result = {"changed": changed, "config_file": path, "lines": managed}
    if module._diff:
        result["diff"] = {"before": before, "after": after, "before_header": path, "after_header": path}
    if changed and not module.check_mode:
        write_atomically(path, after)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
