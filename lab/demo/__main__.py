"""Command line of the lab demo: `python -m lab.demo up|down|status` (`make demo`, `make demo-down`)."""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lab.ceph.errors import LabCephError
from lab.demo import stack, summary
from lab.demo.ansible import PlaybookRun, run_playbook
from lab.demo.processes import DemoError
from lab.demo.settings import INVENTORY, STORE_ID, DemoSettings
from lab.lxc import LabError, containers, instances, teardown
from lab.openbao.server import OpenBaoLabError

LOG = logging.getLogger("lab.demo")
# How long the summary listens to the vision service's MQTT events.
VISION_LISTEN_S = 20.0


def say(text: str = "") -> None:
    print(text, flush=True)


@dataclass
class Step:
    title: str
    action: Callable[[], bool]
    first_run_hint: str = ""


def run_steps(steps: list[Step]) -> bool:
    """Run each lab step and print its outcome; return whether any step changed something."""
    changed_any = False
    for number, step in enumerate(steps, start=1):
        hint = f" ({step.first_run_hint} on a first run)" if step.first_run_hint else ""
        say(f"[{number}/{len(steps)}] {step.title}{hint} ...")
        started = time.monotonic()
        changed = step.action()
        changed_any |= changed
        say(f"      {'done' if changed else 'already up, unchanged'} in {time.monotonic() - started:.1f} s")
    return changed_any


class AnsibleProgress:
    """Print play names as they start and a heartbeat with the task count every 15 s."""

    def __init__(self) -> None:
        self.tasks = 0
        self.last_print = time.monotonic()
        self.current = ""

    def __call__(self, line: str) -> None:
        if line.startswith("PLAY [") and not line.startswith("PLAY RECAP"):
            say(f"      > {line[6:].split(']', maxsplit=1)[0]}")
            self.last_print = time.monotonic()
        elif line.startswith(("TASK [", "RUNNING HANDLER [")):
            self.tasks += 1
            self.current = line.split("[", 1)[1].rsplit("]", 1)[0]
            if time.monotonic() - self.last_print > 15:
                say(f"        ... {self.tasks} tasks so far, now: {self.current}")
                self.last_print = time.monotonic()
        elif line.startswith(("fatal:", "failed:")):
            say(f"        {line}")


def run_site(lab: stack.Lab) -> PlaybookRun:
    say(f"[site] ansible-playbook playbooks/site.yml --limit store_{STORE_ID} (log: {lab.demo_dir / 'site.log'})")
    run = run_playbook(
        "site.yml",
        INVENTORY,
        lab.demo_dir / "site.log",
        "--limit",
        f"store_{STORE_ID}",
        on_line=AnsibleProgress(),
        env={"RETAIL_EDGE_LAB_DIR": str(lab.root)},
    )
    if run.returncode != 0:
        raise DemoError(
            f"site.yml failed (exit {run.returncode}); its first failure:\n{first_failure(run.log_file)}\n"
            f"The full output is in {run.log_file}"
        )
    say(f"      site.yml finished in {run.elapsed_s:.0f} s: {run.changed} changed tasks on {len(run.recap)} hosts")
    return run


def first_failure(log_file: Path, context_lines: int = 25) -> str:
    """Return the task header and the lines of the first failed task in an ansible-playbook log."""
    lines = log_file.read_text(errors="replace").splitlines()
    for index, line in enumerate(lines):
        if line.startswith(("fatal:", "failed:")):
            header = next((lines[i] for i in range(index, -1, -1) if lines[i].startswith(("TASK [", "RUNNING"))), "")
            return "\n".join([header, *lines[index : index + context_lines]])
    return "\n".join(lines[-context_lines:])


def run_compliance(lab: stack.Lab) -> dict[str, int]:
    report = lab.demo_dir / "compliance-junit.xml"
    say(f"[compliance] playbooks/compliance.yml --limit store_{STORE_ID} (JUnit report: {report})")
    run = run_playbook(
        "compliance.yml",
        INVENTORY,
        lab.demo_dir / "compliance.log",
        "--limit",
        f"store_{STORE_ID}",
        "-e",
        json.dumps({"compliance_junit_file": str(report)}),
        env={"RETAIL_EDGE_LAB_DIR": str(lab.root)},
    )
    counts = junit_counts(report) if report.is_file() else {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    counts["returncode"] = run.returncode
    failed = counts["failures"] + counts["errors"]
    say(f"      {counts['tests']} checks, {failed} failed or in error ({run.elapsed_s:.0f} s)")
    return counts


def junit_counts(report: Path) -> dict[str, int]:
    root = ET.parse(report).getroot()  # noqa: S314 - our own pytest's report
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert suite is not None
    return {key: int(suite.get(key, "0")) for key in ("tests", "failures", "errors", "skipped")}


def print_summary(lab: stack.Lab, site: PlaybookRun, lab_changed: bool, compliance: dict[str, int]) -> bool:
    env = {"RETAIL_EDGE_LAB_DIR": str(lab.root)}
    declared = summary.declared_workloads(env)
    say()
    say(f"Store {STORE_ID} on the lab ({lab.root})")
    say()
    say("Workloads:")
    healths = [summary.check_health(host, entry) for host, entry in sorted(declared.items())]
    for item in healths:
        say(f"  {'OK  ' if item.healthy else 'FAIL'} {item.workload:<17} {item.url:<48} {item.detail}")

    say()
    say("Sample answers:")
    samples = summary.sample_answers(declared)
    for name, value in samples.items():
        say(f"  {name}: {json.dumps(value)[:400]}")

    say()
    password = stack.read_secret(lab, f"stores/{STORE_ID}/mqtt_broker/dashboard", "password")
    if "vision_inference" in next(iter(declared.values()))["addresses"] and password:
        broker = next(entry["address"] for entry in declared.values() if entry["workload"] == "mqtt_broker")
        events = summary.vision_events(broker, 1883, password, VISION_LISTEN_S)
        say(f"Vision events from vtest.avi in {VISION_LISTEN_S:.0f} s (store/{STORE_ID}/vision/#): {len(events)}")
        for event in events[-5:]:
            say(f"  {json.dumps(event)[:200]}")
    say()
    passed = compliance["returncode"] == 0
    say(
        f"Compliance: {'green' if passed else 'FAILED'}, {compliance['tests']} checks, "
        f"{compliance['failures'] + compliance['errors']} failed (report {lab.demo_dir / 'compliance-junit.xml'})"
    )
    if not lab_changed and site.changed == 0:
        say("Nothing changed: the lab and store s001 were already as declared.")
    say()
    say("Tear the lab down with: make demo-down   ('python -m lab.demo down --purge' also drops the download caches)")
    return passed and all(item.healthy for item in healths)


def cmd_up(settings: DemoSettings, _args: argparse.Namespace) -> int:
    lab = stack.Lab(settings)
    started = time.monotonic()
    say(f"retail.edge lab demo: store {STORE_ID}, lab directory {lab.root}")
    steps = [
        Step(
            "LXC lab: bridge edgelab0, apt proxy, golden Debian 12 container, wheelhouse",
            lambda: stack.ensure_lxc_lab(lab),
            "about 3 minutes",
        ),
        Step("Ceph: one mon, mgr and OSD on 127.0.0.1", lambda: stack.ensure_ceph(lab)),
        Step("OpenBao: initialized and unsealed, TLS on 127.0.0.1", lambda: stack.ensure_openbao(lab)),
        Step("Store secrets: the HQ token in OpenBao", lambda: stack.seed_hq_tokens(lab)),
        Step("Lab HQ: stock feed and sales ingest on the bridge", lambda: stack.ensure_hq(lab)),
        Step("Content origin: kiosk pages with an ESI promo", lambda: stack.ensure_content(lab)),
        Step("PVE double with the LXC backend on 127.0.0.1", lambda: stack.ensure_pve_double(lab)),
    ]
    lab_changed = run_steps(steps)
    site = run_site(lab)
    compliance = run_compliance(lab)
    healthy = print_summary(lab, site, lab_changed, compliance)
    say(f"Total time: {time.monotonic() - started:.0f} s")
    return 0 if healthy else 1


# Download caches that `down` keeps unless --purge: debootstrap's result, apt-cacher-ng's cache, the wheels.
KEPT_CACHES = ("cache", "apt-cacher-ng", "wheelhouse")


def cmd_down(settings: DemoSettings, args: argparse.Namespace) -> int:
    """Stop every process by PID, remove all containers, the bridge and the lab's state."""
    lab = stack.Lab(settings)
    lab_settings = settings.lab
    for process in (lab.pve_process(), lab.hq_process(), lab.content_process()):
        pid = process.stop()
        say(f"{process.name}: {'stopped pid ' + str(pid) if pid else 'not running'}")
    for name in containers.names(lab_settings):
        if name.startswith(settings.name_prefix):
            instances.destroy(lab_settings, name)
            say(f"container {name}: destroyed")
    say(f"OpenBao: {'stopped' if lab.openbao.stop() else 'not running'}")
    if (lab.root / "ceph").is_dir():
        lab.ceph.purge()
        say("Ceph: stopped and purged")
    teardown(lab_settings, keep_images=not args.purge)
    if args.purge or not lab.root.is_dir():
        say(f"removed {lab.root}")
        return 0
    if containers.destroy(lab_settings, lab_settings.golden_name):
        say(f"container {lab_settings.golden_name}: destroyed")
    for entry in lab.root.iterdir():
        if entry.name in KEPT_CACHES:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    say(f"kept the download caches {', '.join(KEPT_CACHES)} in {lab.root}; 'down --purge' removes them too")
    return 0


def cmd_status(settings: DemoSettings, _args: argparse.Namespace) -> int:
    lab = stack.Lab(settings)
    status = {
        "lab_dir": str(lab.root),
        "processes": {
            process.name: process.pid() for process in (lab.pve_process(), lab.hq_process(), lab.content_process())
        },
        "openbao": lab.openbao.running_pid(),
        "ceph": lab.ceph.pids() if (lab.root / "ceph").is_dir() else None,
        "containers": {name: containers.state(settings.lab, name) for name in containers.names(settings.lab)},
    }
    print(json.dumps(status, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.demo", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="bring the lab up, run site.yml for store s001, check it, summarize").set_defaults(
        func=cmd_up
    )
    down = commands.add_parser("down", help="stop the lab's processes and remove its containers, bridge and state")
    down.add_argument("--purge", action="store_true", help="also remove the download caches (the whole lab directory)")
    down.set_defaults(func=cmd_down)
    commands.add_parser("status", help="print what of the lab runs, as JSON").set_defaults(func=cmd_status)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return int(args.func(DemoSettings.from_env(), args))
    except (DemoError, LabError, LabCephError, OpenBaoLabError) as exc:
        say(f"error: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
