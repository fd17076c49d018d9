"""Device passthrough with the lxc_gpu module's mechanism (cgroup rule plus bind mount) on a real LXC container.

The lab host has no GPU, so the test passes /dev/loop-control (10:237), a character device that LXC's
default rules for Debian containers do not allow. It proves from inside the container that the device
opens only after the module wrote its block, while /dev/vcs (7:0), which is not passed, stays refused.
The module reads the node's cgroup version itself.
"""

from __future__ import annotations

import pytest

from lab.lxc import LabSettings, containers, ensure_lab, instances
from tests.support import run_module

NAME = "devpass-check"
PASSED = {"path": "/dev/loop-control", "major": 10, "minor": 237}
NOT_PASSED = (7, 0)  # /dev/vcs

OPEN_SCRIPT = """python3 - <<'EOF'
import os
for path in {paths!r}:
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
        print(path, "opened")
    except OSError as exc:
        print(path, "refused", exc.errno)
EOF
"""


@pytest.fixture(scope="module")
def container():
    settings = LabSettings.from_env()
    ensure_lab(settings, with_wheelhouse=False)
    instances.create(settings, NAME)
    yield settings
    instances.destroy(settings, NAME)


def open_devices(settings: LabSettings, *paths: str) -> dict[str, str]:
    script = f"mknod -m 600 /root/vcs c {NOT_PASSED[0]} {NOT_PASSED[1]} 2>/dev/null || true\n"
    script += "mkdir -p /root/probe && (mknod -m 600 /root/probe/loop-control c 10 237 2>/dev/null || true)\n"
    output = containers.attach(settings, NAME, script + OPEN_SCRIPT.format(paths=list(paths)))
    return {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in output.splitlines() if line.startswith("/")}


def restart(settings: LabSettings) -> None:
    containers.stop(settings, NAME)
    instances.create(settings, NAME)


def test_passed_device_opens_other_refused(container):
    settings = container
    before = open_devices(settings, "/root/probe/loop-control", "/root/vcs")
    assert before["/root/probe/loop-control"].startswith("refused")
    assert before["/root/vcs"].startswith("refused")

    config = str(containers.config_path(settings, NAME))
    result = run_module("retail.edge.lxc_gpu", {"config_file": config, "syntax": "lxc", "devices": [PASSED]})
    assert result["changed"] is True, result
    assert result["lines"][0].endswith("devices.allow = c 10:237 rwm")
    restart(settings)

    after = open_devices(settings, "/dev/loop-control", "/root/vcs")
    assert after["/dev/loop-control"] == "opened"
    assert after["/root/vcs"].startswith("refused")

    again = run_module("retail.edge.lxc_gpu", {"config_file": config, "syntax": "lxc", "devices": [PASSED]})
    assert again["changed"] is False

    removed = run_module("retail.edge.lxc_gpu", {"config_file": config, "syntax": "lxc", "state": "absent"})
    assert removed["changed"] is True
    restart(settings)
    assert open_devices(settings, "/root/probe/loop-control")["/root/probe/loop-control"].startswith("refused")
