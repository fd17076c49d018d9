"""The main job end to end on the real lab: `python -m lab.demo up` (what `make demo` runs), twice.

The first module fixture brings the whole lab up (LXC, Ceph, OpenBao, HQ, the PVE double with the LXC
backend), runs site.yml for store s001, the compliance suite and the summary. When the lab was not up
before, the module takes it down again at the end and keeps only the golden image and caches.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab.demo import stack
from lab.demo.__main__ import junit_counts
from lab.demo.ansible import RECAP_RE, PlaybookRun, run_playbook
from lab.demo.settings import INVENTORY, REPO_ROOT, STORE_ID, DemoSettings
from lab.demo.summary import declared_workloads
from tests.support import kv_secret_values, secret_values_in

pytestmark = [pytest.mark.slow, pytest.mark.lab_containers]

WORKLOADS = (
    "varnish_edge",
    "inventory_api",
    "rules_engine",
    "pos_cache",
    "vision_inference",
    "kiosk_cache",
    "mqtt_broker",
    "observability",
)


@dataclass
class DemoRun:
    lab: stack.Lab
    returncode: int
    output: str


def demo(command: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lab.demo", command],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def demo_up() -> Iterator[DemoRun]:
    lab = stack.Lab(DemoSettings.from_env())
    was_up = lab.pve_process().pid() is not None
    proc = demo("up", timeout=1800)
    yield DemoRun(lab, proc.returncode, proc.stdout + proc.stderr)
    if not was_up:
        down = demo("down", timeout=600)
        assert down.returncode == 0, down.stdout + down.stderr


@pytest.fixture(scope="module")
def second_demo_up(demo_up: DemoRun) -> DemoRun:
    """`make demo` once more on the converged lab: it must reuse everything and change nothing."""
    assert demo_up.returncode == 0, demo_up.output[-6000:]
    proc = demo("up", timeout=1800)
    return DemoRun(demo_up.lab, proc.returncode, proc.stdout + proc.stderr)


def recap_of(log_file: Path) -> dict[str, dict[str, int]]:
    """Return the PLAY RECAP counts per host of an ansible-playbook log."""
    recap = {}
    for line in log_file.read_text().splitlines():
        match = RECAP_RE.match(line)
        if match is not None:
            recap[match["host"]] = {key: int(match[key]) for key in ("ok", "changed", "unreachable", "failed")}
    return recap


def test_demo_finishes(demo_up: DemoRun) -> None:
    assert demo_up.returncode == 0, demo_up.output[-6000:]
    assert "Tear the lab down with: make demo-down" in demo_up.output


def test_every_workload_healthy(demo_up: DemoRun) -> None:
    lines = demo_up.output.splitlines()
    for workload in WORKLOADS:
        rows = [line.split() for line in lines if line.strip().split()[1:2] == [workload]]
        assert rows, f"{workload} is missing from the summary:\n{demo_up.output[-3000:]}"
        assert rows[0][0] == "OK", f"{workload} is not healthy: {' '.join(rows[0])}"


def test_compliance_suite_green(demo_up: DemoRun) -> None:
    counts = junit_counts(demo_up.lab.demo_dir / "compliance-junit.xml")
    assert counts["tests"] > 0
    assert counts["failures"] == 0, demo_up.output[-3000:]
    assert counts["errors"] == 0, demo_up.output[-3000:]
    assert "Compliance: green" in demo_up.output


def test_sample_answers_present(demo_up: DemoRun) -> None:
    for sample in ("stock:", "promise:", "price:"):
        assert any(line.strip().startswith(sample) for line in demo_up.output.splitlines()), sample
    assert '"status": 200' in demo_up.output


def test_vision_events_from_footage(demo_up: DemoRun) -> None:
    line = next((line for line in demo_up.output.splitlines() if line.startswith("Vision events")), "")
    assert line, demo_up.output[-3000:]
    assert int(line.rsplit(":", 1)[1]) > 0, line


def test_second_demo_changes_nothing(second_demo_up: DemoRun) -> None:
    assert second_demo_up.returncode == 0, second_demo_up.output[-6000:]
    recap = recap_of(second_demo_up.lab.demo_dir / "site.log")
    assert recap, "site.yml printed no PLAY RECAP"
    changed = {host: counts["changed"] for host, counts in recap.items() if counts["changed"]}
    assert not changed, f"changed on the second run: {changed}; see {second_demo_up.lab.demo_dir / 'site.log'}"
    assert "Nothing changed" in second_demo_up.output


def test_inventory_lists_every_workload(demo_up: DemoRun) -> None:
    declared = declared_workloads({"RETAIL_EDGE_LAB_DIR": str(demo_up.lab.root)})
    assert sorted(entry["workload"] for entry in declared.values()) == sorted(WORKLOADS)


def task_of(log: str, offset: int) -> str:
    """Return the TASK header line of an ansible-playbook log that precedes offset."""
    start = log.rfind("TASK [", 0, offset)
    return log[start : log.index("]", start) + 1] if start >= 0 else "(before the first task)"


def run_site(demo: DemoRun, log_name: str, *args: str) -> PlaybookRun:
    """Run site.yml for the lab store with extra ansible-playbook arguments, logging to the demo directory."""
    return run_playbook(
        "site.yml",
        INVENTORY,
        demo.lab.demo_dir / log_name,
        "--limit",
        f"store_{STORE_ID}",
        *args,
        env={"RETAIL_EDGE_LAB_DIR": str(demo.lab.root)},
    )


def test_check_mode_reports_no_change(demo_up: DemoRun, second_demo_up: DemoRun) -> None:
    assert second_demo_up.returncode == 0
    check = run_site(demo_up, "site-check.log", "--check", "--diff")
    assert check.returncode == 0, check.log_file.read_text()[-5000:]
    changed = {host: counts["changed"] for host, counts in check.recap.items() if counts["changed"]}
    assert not changed, f"--check --diff predicts changes on a converged store: {changed}; see {check.log_file}"


def test_verbose_site_run_prints_no_secret(demo_up: DemoRun, second_demo_up: DemoRun) -> None:
    """A whole site.yml run at -vvv, what an operator turns on to debug, shows no value stored in OpenBao."""
    assert second_demo_up.returncode == 0
    verbose = run_site(demo_up, "site-vvv.log", "-vvv", "--diff")
    log = verbose.log_file.read_text()
    assert verbose.returncode == 0, log[-5000:]
    assert "ESTABLISH SSH CONNECTION" in log, "the run did not reach the containers at -vvv"

    openbao = demo_up.lab.openbao
    vault = {"url": openbao.status()["url"], "token": openbao.root_token(), "ca_file": str(openbao.ca_file)}
    stored = kv_secret_values(**vault)
    # At least the HQ token (one value shared by three workloads), the MQTT publisher and dashboard
    # passwords, and Varnish's admin secret.
    assert len(stored) >= 4, f"only {len(stored)} distinct values in the lab OpenBao's kv mount"
    leaked = secret_values_in(log, **vault)
    # Name the tasks whose output shows a value, without printing the value itself.
    tasks = sorted({task_of(log, log.index(value)) for value in leaked})
    assert leaked == [], f"{len(leaked)} secret values from OpenBao appear in {verbose.log_file}, in: {tasks}"
    assert openbao.root_token() not in log
