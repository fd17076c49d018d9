#!/usr/bin/python
# Copyright: (c) 2026, retail.edge maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: gpu_facts
short_description: Discover the GPUs of a Proxmox VE node and the device nodes that pass them into containers
version_added: 0.1.0
author:
  - retail.edge maintainers (@retail-edge)
description:
  - Lists the PCI display and 3D controllers of a host from sysfs, with vendor and device ids, the bound kernel
    driver and the IOMMU group.
  - Finds each GPU's character device nodes (C(/dev/nvidia<N>), C(/dev/dri/card<N>), C(/dev/dri/renderD<N>)) and the
    nodes that every container using a GPU of that vendor needs (C(/dev/nvidiactl), C(/dev/nvidia-uvm),
    C(/dev/nvidia-caps/*), C(/dev/kfd)), with their major and minor numbers read from the nodes themselves.
  - Reads the character-device majors from C(/proc/devices). Some majors, such as C(nvidia-uvm)'s, are assigned when
    the module loads and differ between hosts, so passthrough rules must take them from here.
  - Runs on the Proxmox VE node, not on the controller. Reads only; changes nothing.
attributes:
  check_mode:
    support: full
    description: The module only reads, so it runs unchanged in check mode.
  diff_mode:
    support: none
    description: The module changes nothing, so it has no diff.
  facts:
    support: full
    description: The result is also set as the C(gpu_facts) fact.
options:
  root:
    description:
      - Path that stands for C(/) when reading C(sys), C(proc) and C(dev).
      - Tests point it at a prepared tree; on a real host leave the default.
    type: path
    default: /
"""

EXAMPLES = r"""
- name: Discover the node's GPUs
  retail.edge.gpu_facts:
  register: node_gpus

- name: Show the device nodes of the first GPU
  ansible.builtin.debug:
    msg: "{{ node_gpus.gpus[0].device_nodes | map(attribute='path') }}"
  when: node_gpus.gpus | length > 0
"""

RETURN = r"""
gpus:
  description: The display and 3D controllers found, ordered by PCI address.
  returned: always
  type: list
  elements: dict
  contains:
    pci_address:
      description: PCI address in domain:bus:device.function form.
      type: str
      sample: "0000:65:00.0"
    vendor:
      description: Vendor name (C(nvidia), C(amd), C(intel)), or C(unknown).
      type: str
      sample: nvidia
    vendor_id:
      description: PCI vendor id, four hexadecimal digits.
      type: str
      sample: "10de"
    device_id:
      description: PCI device id, four hexadecimal digits.
      type: str
      sample: "2335"
    class_code:
      description: PCI class code, six hexadecimal digits (C(0300xx) VGA, C(0302xx) 3D, C(0380xx) other display).
      type: str
      sample: "030200"
    kind:
      description: C(vga), C(3d) or C(display), from the class code.
      type: str
    driver:
      description: Name of the bound kernel driver, or null when no driver is bound.
      type: str
      sample: nvidia
    iommu_group:
      description: IOMMU group number, or null when the IOMMU is off.
      type: int
      sample: 42
    passthrough_ready:
      description: True when the device is bound to C(vfio-pci) and can be given to a VM.
      type: bool
    device_nodes:
      description: The character device nodes that belong to this GPU alone.
      type: list
      elements: dict
      contains:
        path:
          description: Path of the device node on the host.
          type: str
        major:
          description: Major number.
          type: int
        minor:
          description: Minor number.
          type: int
shared_device_nodes:
  description:
    - Device nodes that every container using a GPU of a vendor needs besides the GPU's own nodes, keyed by vendor.
  returned: always
  type: dict
  sample: {"nvidia": [{"path": "/dev/nvidiactl", "major": 195, "minor": 255}]}
char_majors:
  description: Character-device majors from C(/proc/devices), keyed by driver name.
  returned: always
  type: dict
  sample: {"nvidia": 195, "nvidia-uvm": 508, "drm": 226}
iommu_enabled:
  description: True when the kernel created IOMMU groups, which PCI passthrough to VMs needs.
  returned: always
  type: bool
"""

import glob
import os
import re
import stat

from ansible.module_utils.basic import AnsibleModule

VENDORS = {"10de": "nvidia", "1002": "amd", "8086": "intel"}
DISPLAY_CLASSES = {"00": "vga", "02": "3d", "80": "display"}
NVIDIA_SHARED = ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset")
NVIDIA_MINOR_PATTERN = re.compile(r"^Device Minor:\s*(\d+)", re.MULTILINE)


def read_text(path):
    """Return the stripped content of a sysfs or procfs file, or None when it is missing or unreadable."""
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return None


def link_name(path):
    """Return the last path element that the symlink at path points to, or None when there is no link."""
    try:
        return os.path.basename(os.readlink(path))
    except OSError:
        return None


def char_device(path, host_path):
    """Return {path, major, minor} for a character device at path, reported as host_path, or None."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISCHR(info.st_mode):
        return None
    return {"path": host_path, "major": os.major(info.st_rdev), "minor": os.minor(info.st_rdev)}


def read_char_majors(root):
    """Parse the 'Character devices' section of /proc/devices into {name: major}."""
    content = read_text(os.path.join(root, "proc/devices")) or ""
    majors = {}
    in_char_section = False
    for line in content.splitlines():
        if line.startswith("Character devices"):
            in_char_section = True
            continue
        if line.startswith("Block devices"):
            break
        fields = line.split()
        if in_char_section and len(fields) == 2 and fields[0].isdigit():
            majors.setdefault(fields[1], int(fields[0]))
    return majors


class Discovery:
    """Reads GPUs and their device nodes below a root directory."""

    def __init__(self, root):
        self.root = root

    def host(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def gpus(self):
        found = []
        for device_dir in sorted(glob.glob(self.host("/sys/bus/pci/devices/*"))):
            class_code = (read_text(os.path.join(device_dir, "class")) or "").lower().removeprefix("0x")
            if len(class_code) != 6 or not class_code.startswith("03"):
                continue
            found.append(self.describe(device_dir, class_code))
        return found

    def describe(self, device_dir, class_code):
        address = os.path.basename(device_dir)
        vendor_id = (read_text(os.path.join(device_dir, "vendor")) or "").lower().removeprefix("0x")
        group = link_name(os.path.join(device_dir, "iommu_group"))
        driver = link_name(os.path.join(device_dir, "driver"))
        vendor = VENDORS.get(vendor_id, "unknown")
        return {
            "pci_address": address,
            "vendor": vendor,
            "vendor_id": vendor_id,
            "device_id": (read_text(os.path.join(device_dir, "device")) or "").lower().removeprefix("0x"),
            "class_code": class_code,
            "kind": DISPLAY_CLASSES.get(class_code[2:4], "display"),
            "driver": driver,
            "iommu_group": int(group) if group and group.isdigit() else None,
            "passthrough_ready": driver == "vfio-pci",
            "device_nodes": self.own_nodes(device_dir, address, vendor, driver),
        }

    def own_nodes(self, device_dir, address, vendor, driver):
        nodes = []
        # DRM drivers (i915, xe, amdgpu, nouveau, and nvidia-drm) list their nodes under the PCI device.
        for entry in sorted(glob.glob(os.path.join(device_dir, "drm", "*"))):
            name = os.path.basename(entry)
            if name.startswith(("card", "renderD")):
                node = char_device(self.host(f"/dev/dri/{name}"), f"/dev/dri/{name}")
                if node:
                    nodes.append(node)
        if vendor == "nvidia" and driver == "nvidia":
            minor = self.nvidia_minor(address)
            if minor is not None:
                node = char_device(self.host(f"/dev/nvidia{minor}"), f"/dev/nvidia{minor}")
                if node:
                    nodes.append(node)
        return nodes

    def nvidia_minor(self, address):
        information = read_text(self.host(f"/proc/driver/nvidia/gpus/{address}/information"))
        match = NVIDIA_MINOR_PATTERN.search(information or "")
        return int(match.group(1)) if match else None

    def shared_nodes(self, vendors):
        shared = {}
        if "nvidia" in vendors:
            paths = [f"/dev/{name}" for name in NVIDIA_SHARED]
            caps = glob.glob(self.host("/dev/nvidia-caps/*"))
            paths += sorted(path.removeprefix(self.root.rstrip("/")) for path in caps)
            shared["nvidia"] = self.existing(paths)
        if "amd" in vendors:
            shared["amd"] = self.existing(["/dev/kfd"])
        return shared

    def existing(self, paths):
        nodes = []
        for path in paths:
            node = char_device(self.host(path), path)
            if node:
                nodes.append(node)
        return nodes


def main():
    module = AnsibleModule(
        argument_spec={"root": {"type": "path", "default": "/"}},
        supports_check_mode=True,
    )
    root = module.params["root"]
    if not os.path.isdir(root):
        module.fail_json(msg=f"root {root!r} is not a directory: point it at a host root such as /")

    discovery = Discovery(root)
    gpus = discovery.gpus()
    vendors = {gpu["vendor"] for gpu in gpus if gpu["driver"] not in (None, "vfio-pci")}
    result = {
        "gpus": gpus,
        "shared_device_nodes": discovery.shared_nodes(vendors),
        "char_majors": read_char_majors(root),
        "iommu_enabled": bool(glob.glob(discovery.host("/sys/kernel/iommu_groups/*"))),
    }
    module.exit_json(changed=False, ansible_facts={"gpu_facts": result}, **result)


if __name__ == "__main__":
    main()
