"""Run the collection's playbooks for the lab store and read what the inventory declares."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.demo.processes import DemoError
from lab.demo.settings import REPO_ROOT

VENV_BIN = Path(sys.executable).parent
COLLECTIONS = REPO_ROOT / ".build" / "collections"
RECAP_RE = re.compile(
    r"^(?P<host>\S+)\s+: ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)\s+"
    r"failed=(?P<failed>\d+)"
)


def ensure_collection_link() -> None:
    """Make this checkout importable by Ansible as retail.edge, as `make setup` does."""
    parent = COLLECTIONS / "ansible_collections" / "retail"
    parent.mkdir(parents=True, exist_ok=True)
    link = parent / "edge"
    if not link.is_symlink() or link.resolve() != REPO_ROOT:
        link.unlink(missing_ok=True)
        link.symlink_to(REPO_ROOT)


def ansible_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    ensure_collection_link()
    env = dict(os.environ)
    env.update(
        {
            "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
            "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
            "ANSIBLE_COLLECTIONS_PATH": f"{COLLECTIONS}{os.pathsep}{REPO_ROOT / 'collections'}",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


@dataclass
class PlaybookRun:
    """The outcome of one ansible-playbook run, summed over its hosts from the PLAY RECAP."""

    returncode: int
    log_file: Path
    elapsed_s: float
    recap: dict[str, dict[str, int]] = field(default_factory=dict)

    def total(self, key: str) -> int:
        return sum(counts[key] for counts in self.recap.values())

    @property
    def changed(self) -> int:
        return self.total("changed")


def run_playbook(
    playbook: str,
    inventory: Path,
    log_file: Path,
    *args: str,
    on_line: Callable[[str], None] | None = None,
    env: Mapping[str, str] | None = None,
) -> PlaybookRun:
    """Run a playbook of playbooks/, writing its whole output to log_file and each line to on_line."""
    command = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(REPO_ROOT / "playbooks" / playbook), *args]
    started = time.monotonic()
    log_file.parent.mkdir(parents=True, exist_ok=True)
    recap: dict[str, dict[str, int]] = {}
    with log_file.open("w") as log:
        log.write(f"$ {' '.join(command)}\n")
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=ansible_environment(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        assert process.stdout is not None
        for line in process.stdout:
            log.write(line)
            match = RECAP_RE.match(line)
            if match is not None:
                recap[match["host"]] = {key: int(match[key]) for key in ("ok", "changed", "unreachable", "failed")}
            if on_line is not None:
                on_line(line.rstrip("\n"))
        returncode = process.wait()
    return PlaybookRun(returncode, log_file, time.monotonic() - started, recap)


def render_host_vars(
    inventory: Path, pattern: str, variable: str, vars_file: Path, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Return host name -> the value of variable, defined in vars_file and templated by Ansible for each host.

    Runs `ansible PATTERN -m debug` with the playbooks' group_vars (--playbook-dir), so the values are
    exactly what the playbooks see. The debug action runs on the controller: no host is contacted.
    """
    command = [
        str(VENV_BIN / "ansible"),
        pattern,
        "-i",
        str(inventory),
        "--playbook-dir",
        str(REPO_ROOT / "playbooks"),
        "-m",
        "ansible.builtin.debug",
        "-a",
        f"var={variable}",
        "-e",
        f"@{vars_file}",
    ]
    extra = {"ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json", "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", **(env or {})}
    proc = subprocess.run(
        command, cwd=REPO_ROOT, env=ansible_environment(extra), capture_output=True, text=True, timeout=300, check=False
    )
    try:
        hosts = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]
        return {name: answer[variable] for name, answer in hosts.items()}
    except (json.JSONDecodeError, KeyError, IndexError) as exc:
        raise DemoError(
            f"rendering {variable} for {pattern} with ansible failed (exit {proc.returncode}):\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        ) from exc
