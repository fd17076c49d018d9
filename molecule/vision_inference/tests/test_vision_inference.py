"""Behaviour of the vision_inference role: the CPU path without a GPU, and frames from a looped clip analysed."""

from __future__ import annotations

import re

import pytest

from tests.molecule.verify import (
    http_get,
    installed_wheels,
    instance_address,
    poll,
    run_scenario_playbook,
    unit_property,
)

UNIT = "retail-edge-vision"
VENV_PIP = "/opt/retail-edge/vision/bin/pip"


@pytest.fixture
def base_url(host):
    return f"http://{instance_address(host)}:9108"


def metric_value(text: str, name: str, labels: str) -> float:
    match = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text, re.MULTILINE)
    assert match, f"{name}{{{labels}}} missing from /metrics"
    return float(match.group(1))


def frames_total(base_url: str) -> float:
    return metric_value(http_get(f"{base_url}/metrics").text, "retail_edge_vision_frames_total", 'camera="entrance"')


def test_unit_running_as_service_user(host):
    assert host.service(UNIT).is_running
    main_pid = unit_property(host, UNIT, "MainPID")
    assert host.check_output(f"ps -o user= -p {main_pid}") == "retail-vision"


def test_no_gpu_means_cpu_provider(host):
    assert host.run("ls /dev/nvidiactl").rc != 0
    settings = host.check_output("sudo cat /etc/retail-edge/vision/settings.yml")
    assert "provider: cpu" in settings
    assert host.run(f"{VENV_PIP} show onnxruntime").rc == 0
    assert host.run(f"{VENV_PIP} show onnxruntime-gpu").rc != 0


def test_detector_loaded_on_cpu(host):
    journal = host.check_output(f"sudo journalctl --unit {UNIT} --no-pager --output cat")
    loaded = [line for line in journal.splitlines() if "onnx detector loaded" in line]
    assert loaded
    assert "CPUExecutionProvider" in loaded[-1]


def test_unit_keeps_private_devices(host):
    assert unit_property(host, UNIT, "PrivateDevices") == "yes"
    assert "nvidia" not in unit_property(host, UNIT, "DeviceAllow")


def test_vision_wheels_copied(host):
    wheels = installed_wheels(host, "vision")
    assert any(name.startswith("opencv_python_headless-") for name in wheels)
    assert any(name.startswith("onnxruntime-") for name in wheels)
    assert not [name for name in wheels if name.startswith(("wasmtime", "argon2"))]


def test_model_readable_by_service_only(host):
    owner = host.check_output("sudo stat -c '%U %G %a' /usr/local/share/retail-edge/vision/person.onnx")
    assert owner == "root retail-vision 640"


def test_frames_processed(base_url):
    first = frames_total(base_url)
    assert first > 0
    assert poll(lambda: frames_total(base_url) > first, timeout=10)
    text = http_get(f"{base_url}/metrics").text
    inferences = metric_value(text, "retail_edge_vision_inference_seconds_count", 'camera="entrance",detector="onnx"')
    assert inferences > 0


def test_healthz_reports_camera(base_url):
    health = http_get(f"{base_url}/healthz")
    assert health.status_code == 200, health.text
    camera = health.json()["cameras"]["entrance"]
    assert camera["ok"] is True
    assert camera["error"] is None


def test_gpu_device_selects_cuda(host):
    """With NVIDIA device nodes present, accelerator auto takes the CUDA path, which needs the GPU wheel set.

    The nodes are made with mknod and lead to no GPU, and the lab wheelhouse has no onnxruntime-gpu set, so the
    role must stop at its GPU check, before it changes anything.
    """
    settings_before = host.check_output("sudo sha256sum /etc/retail-edge/vision/settings.yml")
    host.run_expect([0], "sudo mknod -m 0666 /dev/nvidiactl c 195 255 && sudo mknod -m 0666 /dev/nvidia0 c 195 0")
    try:
        result = run_scenario_playbook("converge.yml")
    finally:
        host.run_expect([0], "sudo rm -f /dev/nvidiactl /dev/nvidia0")
    assert result.returncode != 0
    # Failed results may go to stderr, and the YAML callback wraps long messages, so compare with whitespace
    # collapsed.
    output = " ".join((result.stdout + result.stderr).split())
    assert "The CUDA provider needs an NVIDIA device node" in output
    assert "the wheel set onnxruntime-gpu" in output
    assert host.check_output("sudo sha256sum /etc/retail-edge/vision/settings.yml") == settings_before
