"""Background processes of the demo (PVE double, lab HQ, content origin), found again through PID files.

A PID counts as ours only while /proc/<pid>/cmdline still contains the marker the process was started
with (its state directory), so a recycled PID of another program is never signalled.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lab.demo.settings import REPO_ROOT


class DemoError(RuntimeError):
    """A demo step failed; the message names the step, the value and where to look."""


@dataclass(frozen=True)
class BackgroundProcess:
    """One detached process: its argv, the PID file, the log file and the marker in its command line."""

    name: str
    argv: tuple[str, ...]
    pid_file: Path
    log_file: Path
    marker: str

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except (OSError, ValueError):
            return None
        return pid if self.marker in cmdline else None

    def start(self) -> int:
        """Start the process detached from this one (its own session), unless it already runs; return its PID."""
        running = self.pid()
        if running is not None:
            return running
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                self.argv,
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.write_text(f"{process.pid}\n")
        # Popen returns during the child's exec, while /proc/PID/cmdline can still be empty, and pid()
        # would then take the new process for a dead one. Wait until the new command line shows.
        deadline = time.monotonic() + 10
        while self.pid() is None and _alive(process.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        return process.pid

    def stop(self, timeout: float = 15) -> int | None:
        """Stop the process with SIGTERM (SIGKILL after timeout); return the PID it had, or None."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return None
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return pid

    def log_tail(self, chars: int = 2000) -> str:
        return self.log_file.read_text(errors="replace")[-chars:] if self.log_file.is_file() else "(no log)"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def python_module(*args: str) -> tuple[str, ...]:
    """Return the argv that runs `python -m ...` with this interpreter (the project's virtualenv)."""
    return (sys.executable, "-m", *args)


def wait_for_file(path: Path, process: BackgroundProcess, timeout: float) -> None:
    """Wait until process has written path; fail with its log when it exits or time runs out."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.pid() is None:
            raise DemoError(
                f"{process.name} exited during start-up; its log {process.log_file} ends:\n{process.log_tail()}"
            )
        if time.monotonic() > deadline:
            raise DemoError(f"{process.name} did not write {path} within {timeout:.0f} s; see {process.log_file}")
        time.sleep(0.1)
