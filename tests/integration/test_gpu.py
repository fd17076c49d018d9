"""GPU discovery, raw LXC device passthrough config and the pve_gpu_host role, on prepared host trees.

The trees are shaped like the sysfs, procfs and /dev of real Proxmox VE nodes. Their device nodes are real
character devices made with mknod, so the modules read majors and minors the way they do on a host.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support import run_module, run_playbook

PROC_DEVICES_BASE = """Character devices:
  1 mem
  4 /dev/vc/0
  4 tty
  5 /dev/tty
 10 misc
 13 input
"""


@dataclass
class Gpu:
    address: str
    vendor: str
    device: str
    driver: str | None
    class_code: str = "0x030000"
    iommu_group: int | None = None
    drm: list[str] = field(default_factory=list)


def make_char(root: Path, path: str, major: int, minor: int) -> None:
    node = root / path.lstrip("/")
    node.parent.mkdir(parents=True, exist_ok=True)
    os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(major, minor))


def make_host(root: Path, gpus: list[Gpu], majors: dict[str, int], nodes: dict[str, tuple[int, int]]) -> Path:
    """Write a host tree with the given PCI GPUs, /proc/devices majors and /dev character devices."""
    devices = root / "sys/bus/pci/devices"
    devices.mkdir(parents=True)
    for gpu in gpus:
        device_dir = devices / gpu.address
        device_dir.mkdir()
        (device_dir / "class").write_text(gpu.class_code + "\n")
        (device_dir / "vendor").write_text(f"0x{gpu.vendor}\n")
        (device_dir / "device").write_text(f"0x{gpu.device}\n")
        if gpu.driver:
            driver_dir = root / "sys/bus/pci/drivers" / gpu.driver
            driver_dir.mkdir(parents=True, exist_ok=True)
            (device_dir / "driver").symlink_to(driver_dir)
        if gpu.iommu_group is not None:
            group_dir = root / "sys/kernel/iommu_groups" / str(gpu.iommu_group)
            group_dir.mkdir(parents=True, exist_ok=True)
            (device_dir / "iommu_group").symlink_to(group_dir)
        for name in gpu.drm:
            (device_dir / "drm" / name).mkdir(parents=True)
    proc = root / "proc"
    proc.mkdir()
    extra = "".join(f"{major:3d} {name}\n" for name, major in majors.items())
    (proc / "devices").write_text(PROC_DEVICES_BASE + extra + "\nBlock devices:\n  8 sd\n")
    for path, (major, minor) in nodes.items():
        make_char(root, path, major, minor)
    return root


def facts(root: Path) -> dict:
    result = run_module("retail.edge.gpu_facts", {"root": str(root)})
    assert not result.get("failed"), result
    return result


def test_nvidia_datacenter_gpu_custom_uvm_major(tmp_path):
    gpu = Gpu("0000:65:00.0", "10de", "2330", "nvidia", class_code="0x030200", iommu_group=42)
    root = make_host(
        tmp_path,
        [gpu],
        {"nvidia-frontend": 195, "nvidia-uvm": 509, "nvidia-caps": 511},
        {
            "/dev/nvidia0": (195, 0),
            "/dev/nvidiactl": (195, 255),
            "/dev/nvidia-uvm": (509, 0),
            "/dev/nvidia-uvm-tools": (509, 1),
            "/dev/nvidia-caps/nvidia-cap1": (511, 1),
        },
    )
    info = root / "proc/driver/nvidia/gpus/0000:65:00.0/information"
    info.parent.mkdir(parents=True)
    info.write_text("Model: NVIDIA H100\nIRQ: 34\nDevice Minor: 0\n")

    result = facts(root)
    [found] = result["gpus"]
    assert found["vendor"] == "nvidia"
    assert found["kind"] == "3d"
    assert found["driver"] == "nvidia"
    assert found["iommu_group"] == 42
    assert found["device_nodes"] == [{"path": "/dev/nvidia0", "major": 195, "minor": 0}]
    shared = {node["path"]: (node["major"], node["minor"]) for node in result["shared_device_nodes"]["nvidia"]}
    assert shared["/dev/nvidia-uvm"] == (509, 0)
    assert shared["/dev/nvidia-uvm-tools"] == (509, 1)
    assert shared["/dev/nvidia-caps/nvidia-cap1"] == (511, 1)
    assert result["char_majors"]["nvidia-uvm"] == 509
    assert result["iommu_enabled"] is True
    assert result["ansible_facts"]["gpu_facts"]["gpus"] == result["gpus"]


def test_intel_igpu_on_i915(tmp_path):
    gpu = Gpu("0000:00:02.0", "8086", "a780", "i915", drm=["card0", "renderD128"])
    root = make_host(tmp_path, [gpu], {"drm": 226}, {"/dev/dri/card0": (226, 0), "/dev/dri/renderD128": (226, 128)})
    [found] = facts(root)["gpus"]
    assert found["vendor"] == "intel"
    assert found["kind"] == "vga"
    assert [node["path"] for node in found["device_nodes"]] == ["/dev/dri/card0", "/dev/dri/renderD128"]
    assert found["device_nodes"][1]["minor"] == 128
    assert found["iommu_group"] is None


def test_amd_gpu_with_kfd(tmp_path):
    gpu = Gpu("0000:03:00.0", "1002", "744c", "amdgpu", iommu_group=14, drm=["card1", "renderD129"])
    root = make_host(
        tmp_path,
        [gpu],
        {"drm": 226, "kfd": 234},
        {"/dev/dri/card1": (226, 1), "/dev/dri/renderD129": (226, 129), "/dev/kfd": (234, 0)},
    )
    result = facts(root)
    assert result["gpus"][0]["vendor"] == "amd"
    assert len(result["gpus"][0]["device_nodes"]) == 2
    assert result["shared_device_nodes"]["amd"] == [{"path": "/dev/kfd", "major": 234, "minor": 0}]


def test_gpu_bound_to_vfio(tmp_path):
    gpu = Gpu("0000:41:00.0", "10de", "2204", "vfio-pci", iommu_group=17)
    root = make_host(tmp_path, [gpu], {"vfio": 240}, {"/dev/vfio/17": (240, 0)})
    result = facts(root)
    [found] = result["gpus"]
    assert found["passthrough_ready"] is True
    assert found["device_nodes"] == []
    assert result["shared_device_nodes"] == {}


def test_host_without_gpu(tmp_path):
    nic = Gpu("0000:01:00.0", "8086", "1533", "igb", class_code="0x020000")
    result = facts(make_host(tmp_path, [nic], {}, {}))
    assert result["gpus"] == []
    assert result["iommu_enabled"] is False


PVE_CONF = """#Vision inference for store s001
#second description line
arch: amd64
cores: 2
features: nesting=1
hostname: s001-vision-inference
memory: 2048
net0: name=eth0,bridge=vmbr0,ip=10.20.1.25/24,type=veth
rootfs: local-lvm:vm-205-disk-0,size=8G
lxc.apparmor.profile: unconfined
# a comment an operator left
lxc.mount.entry: /srv/models srv/models none bind,ro,create=dir

[pve:pending]
memory: 4096

[before-upgrade]
cores: 2
memory: 2048
snaptime: 1733300000
"""

NVIDIA_DEVICES = [
    {"path": "/dev/nvidia0", "major": 195, "minor": 0},
    {"path": "/dev/nvidiactl", "major": 195, "minor": 255},
    {"path": "/dev/nvidia-uvm", "major": 509, "minor": 0},
]


def lxc_gpu(conf_dir: Path, devices: list[dict] | None = None, *, check: bool = False, **options) -> dict:
    args = {"vmid": 205, "config_dir": str(conf_dir), "cgroup": "v2", **options}
    if devices is not None:
        args["devices"] = devices
    result = run_module("retail.edge.lxc_gpu", args, check=check, diff=True)
    assert not result.get("failed"), result
    return result


@pytest.fixture
def conf_dir(tmp_path):
    directory = tmp_path / "etc/pve/lxc"
    directory.mkdir(parents=True)
    (directory / "205.conf").write_text(PVE_CONF)
    return directory


def main_section(text: str) -> str:
    return text.split("\n[", 1)[0]


def test_raw_config_add_keeps_other_lines(conf_dir):
    result = lxc_gpu(conf_dir, NVIDIA_DEVICES)
    text = (conf_dir / "205.conf").read_text()
    assert result["changed"] is True
    assert text.startswith(main_section(PVE_CONF) + "# BEGIN retail.edge lxc_gpu")
    assert text.endswith(PVE_CONF[PVE_CONF.index("\n[pve:pending]") :])
    assert "lxc.cgroup2.devices.allow: c 509:0 rwm\n" in text
    assert "lxc.mount.entry: /dev/nvidia-uvm dev/nvidia-uvm none bind,optional,create=file\n" in text
    assert result["diff"]["before"] == PVE_CONF
    assert result["diff"]["after"] == text


def test_raw_config_idempotent(conf_dir):
    lxc_gpu(conf_dir, NVIDIA_DEVICES)
    first = (conf_dir / "205.conf").read_text()
    again = lxc_gpu(conf_dir, list(reversed(NVIDIA_DEVICES)))
    assert again["changed"] is False
    assert (conf_dir / "205.conf").read_text() == first


def test_raw_config_change_and_remove(conf_dir):
    lxc_gpu(conf_dir, NVIDIA_DEVICES)
    changed = lxc_gpu(conf_dir, [*NVIDIA_DEVICES[:2], {"path": "/dev/nvidia-uvm", "major": 508, "minor": 0}])
    text = (conf_dir / "205.conf").read_text()
    assert changed["changed"] is True
    assert "c 508:0 rwm" in text
    assert "c 509:0 rwm" not in text
    assert text.count("# BEGIN retail.edge lxc_gpu") == 1

    removed = lxc_gpu(conf_dir, state="absent")
    assert removed["changed"] is True
    assert (conf_dir / "205.conf").read_text() == PVE_CONF
    assert lxc_gpu(conf_dir, state="absent")["changed"] is False


def test_raw_config_check_mode_writes_nothing(conf_dir):
    result = lxc_gpu(conf_dir, NVIDIA_DEVICES, check=True)
    assert result["changed"] is True
    assert (conf_dir / "205.conf").read_text() == PVE_CONF
    assert "c 195:255 rwm" in result["diff"]["after"]


def test_raw_config_restores_block_after_pve_rewrite(conf_dir):
    lxc_gpu(conf_dir, NVIDIA_DEVICES)
    text = (conf_dir / "205.conf").read_text()
    # Proxmox VE writes '#' lines first, as the description, and lxc.* keys last.
    main = main_section(text).splitlines()
    comments = [line for line in main if line.startswith("#")]
    others = [line for line in main if not line.startswith("#") and line]
    rest = text[len(main_section(text)) :]
    (conf_dir / "205.conf").write_text("\n".join(comments + others) + "\n" + rest)

    result = lxc_gpu(conf_dir, NVIDIA_DEVICES)
    restored = (conf_dir / "205.conf").read_text()
    assert result["changed"] is True
    assert restored.count("lxc.cgroup2.devices.allow: c 195:0 rwm") == 1
    assert restored.count("# BEGIN retail.edge lxc_gpu") == 1
    assert lxc_gpu(conf_dir, NVIDIA_DEVICES)["changed"] is False


def test_raw_config_rejects_bad_path(conf_dir):
    result = run_module(
        "retail.edge.lxc_gpu",
        {
            "vmid": 205,
            "config_dir": str(conf_dir),
            "devices": [{"path": "nvidia0", "major": 195, "minor": 0}],
            "cgroup": "v2",
        },
    )
    assert result["failed"] is True
    assert "path 'nvidia0' is invalid" in result["msg"]


GRUB_DEFAULTS = """GRUB_DEFAULT=0
GRUB_TIMEOUT=5
GRUB_DISTRIBUTOR="Proxmox VE"
GRUB_CMDLINE_LINUX_DEFAULT="quiet intel_iommu=off"
GRUB_CMDLINE_LINUX=""
"""

ROLE_PLAY = """
- name: Prepare a GPU node
  hosts: localhost
  gather_facts: false
  roles:
    - role: retail.edge.pve_gpu_host
  post_tasks:
    - name: Save the reboot flag
      ansible.builtin.copy:
        content: "{{ pve_gpu_host_reboot_required | string }}"
        dest: "{{ pve_gpu_host_root }}/reboot-required-result"
        mode: "0644"
"""


@pytest.fixture
def node_root(tmp_path):
    root = tmp_path / "node"
    for directory in ("etc/default", "etc/kernel", "etc/modules-load.d", "etc/modprobe.d", "etc/udev/rules.d", "run"):
        (root / directory).mkdir(parents=True)
    (root / "etc/default/grub").write_text(GRUB_DEFAULTS)
    recorder = tmp_path / "record.sh"
    recorder.write_text(f'#!/bin/sh\necho "$*" >> {tmp_path}/commands.log\n')
    recorder.chmod(0o755)
    playbook = tmp_path / "play.yml"
    playbook.write_text(ROLE_PLAY)
    return root


def apply_role(root: Path, **variables) -> str:
    recorder = str(root.parent / "record.sh")
    extra = {
        "pve_gpu_host_root": str(root),
        "pve_gpu_host_update_grub_command": [recorder, "update-grub"],
        "pve_gpu_host_boot_tool_refresh_command": [recorder, "proxmox-boot-tool", "refresh"],
        "pve_gpu_host_update_initramfs_command": [recorder, "update-initramfs"],
        **variables,
    }
    return run_playbook(root.parent / "play.yml", extra_vars=extra).stdout


def recorded(root: Path) -> list[str]:
    log = root.parent / "commands.log"
    return log.read_text().splitlines() if log.exists() else []


def test_gpu_host_passthrough_grub(node_root):
    output = apply_role(node_root, pve_gpu_host_mode="passthrough", pve_gpu_host_passthrough_ids=["10de:2330"])
    grub = (node_root / "etc/default/grub").read_text()
    assert 'GRUB_CMDLINE_LINUX_DEFAULT="quiet intel_iommu=on iommu=pt"' in grub
    assert "GRUB_TIMEOUT=5\n" in grub
    assert (
        (node_root / "etc/modules-load.d/retail-edge-vfio.conf")
        .read_text()
        .endswith("vfio\nvfio_iommu_type1\nvfio_pci\n")
    )
    modprobe = (node_root / "etc/modprobe.d/retail-edge-vfio.conf").read_text()
    assert "options vfio-pci ids=10de:2330\n" in modprobe
    assert "softdep nvidia pre: vfio-pci\n" in modprobe
    assert recorded(node_root) == ["update-initramfs", "update-grub"]
    assert (node_root / "reboot-required-result").read_text() == "True"
    assert "changed=0 " not in output

    rerun = apply_role(node_root, pve_gpu_host_mode="passthrough", pve_gpu_host_passthrough_ids=["10de:2330"])
    assert "changed=0 " in rerun
    assert recorded(node_root) == ["update-initramfs", "update-grub"]
    assert (node_root / "reboot-required-result").read_text() == "True"


def test_gpu_host_passthrough_systemd_boot(node_root):
    (node_root / "etc/kernel/cmdline").write_text("root=ZFS=rpool/ROOT/pve-1 boot=zfs\n")
    (node_root / "etc/kernel/proxmox-boot-uuids").write_text("4A1B-2C3D\n")
    apply_role(node_root, pve_gpu_host_mode="passthrough", pve_gpu_host_passthrough_ids=["1002:744c", "1002:ab30"])
    assert (
        node_root / "etc/kernel/cmdline"
    ).read_text() == "root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=on iommu=pt\n"
    assert 'GRUB_CMDLINE_LINUX_DEFAULT="quiet intel_iommu=off"' in (node_root / "etc/default/grub").read_text()
    assert "ids=1002:744c,1002:ab30" in (node_root / "etc/modprobe.d/retail-edge-vfio.conf").read_text()
    assert recorded(node_root) == ["update-initramfs", "proxmox-boot-tool refresh"]


def test_gpu_host_shared_requires_driver(node_root):
    proc = run_playbook(node_root.parent / "play.yml", extra_vars={"pve_gpu_host_root": str(node_root)}, expect_rc=2)
    assert "kernel module nvidia is not loaded" in proc.stdout


def test_gpu_host_shared_mode_undoes_passthrough(node_root):
    apply_role(node_root, pve_gpu_host_mode="passthrough", pve_gpu_host_passthrough_ids=["8086:a780"])
    (node_root / "sys/module/i915").mkdir(parents=True)
    (node_root / "run/reboot-required").unlink()
    apply_role(node_root, pve_gpu_host_mode="shared", pve_gpu_host_vendor="intel")
    assert not (node_root / "etc/modprobe.d/retail-edge-vfio.conf").exists()
    assert (node_root / "etc/modules-load.d/retail-edge-gpu.conf").read_text().endswith("i915\n")
    assert (node_root / "reboot-required-result").read_text() == "True"


@pytest.mark.parametrize(
    "ids",
    [["10DE:2330"], ["10de-2330"], []],
)
def test_gpu_host_rejects_bad_ids(node_root, ids):
    proc = run_playbook(
        node_root.parent / "play.yml",
        extra_vars={
            "pve_gpu_host_root": str(node_root),
            "pve_gpu_host_mode": "passthrough",
            "pve_gpu_host_passthrough_ids": ids,
        },
        expect_rc=2,
    )
    assert "pve_gpu_host_passthrough_ids" in proc.stdout
