"""Subprocess and file-lock helpers private to the LXC lab."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

LOG = logging.getLogger("lab.lxc")


class LabError(RuntimeError):
    """A lab step failed; the message names the command or value and what to do."""


def run(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
    check: bool = True,
    input_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command without a shell and return the finished process.

    With check=True a non-zero exit raises LabError carrying the tail of stderr, so the caller's
    message shows why lxc-create, ip or pip failed.
    """
    argv = [str(part) for part in cmd]
    LOG.debug("run: %s", " ".join(argv))
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    try:
        proc = subprocess.run(
            argv, env=full_env, capture_output=True, text=True, timeout=timeout, check=False, input=input_text
        )
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{argv[0]} timed out after {timeout:.0f} s: {' '.join(argv)}") from exc
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()[-3000:]
        raise LabError(f"{' '.join(argv)} exited {proc.returncode}:\n{detail}")
    return proc


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on path, so parallel test workers build the lab once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_text(path: Path, text: str, mode: int = 0o644) -> bool:
    """Write text to path atomically when it differs; return whether the file changed."""
    if path.is_file() and path.read_text() == text:
        if path.stat().st_mode & 0o7777 != mode:
            path.chmod(mode)
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.chmod(mode)
    tmp.replace(path)
    return True
