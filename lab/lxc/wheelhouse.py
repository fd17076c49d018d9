"""The services' wheelhouse: the retail_edge package and every dependency as wheels, built on the controller.

Roles copy it into containers and install with pip --no-index, so a store (and a lab container) never
needs PyPI.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import time
from pathlib import Path

from ._proc import LOG, run, write_text
from .settings import LabSettings

# Every optional feature of the services package: the wheelhouse serves all four service roles.
EXTRAS = ("rules", "vision", "onnx", "pos")
STAMP_NAME = ".retail-edge-wheelhouse.sha256"


def source_digest(settings: LabSettings) -> str:
    """Hash the package sources and the pins they are built with, skipping caches and build output."""
    src = settings.repo_root / "src"
    digest = hashlib.sha256()
    inputs = [path for path in sorted(src.rglob("*")) if path.is_file() and not _is_build_output(path, src)]
    inputs.append(settings.repo_root / "requirements" / "constraints.txt")
    for path in inputs:
        digest.update(str(path.relative_to(settings.repo_root)).encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(",".join(EXTRAS).encode())
    return digest.hexdigest()


def _is_build_output(path: Path, src: Path) -> bool:
    parts = path.relative_to(src).parts
    return any(part in {"__pycache__", "build", "dist"} or part.endswith(".egg-info") for part in parts)


def ensure_wheelhouse(settings: LabSettings) -> bool:
    """Build the wheelhouse unless the sources are unchanged since the last build; return whether it was built."""
    target = settings.wheelhouse
    stamp = target / STAMP_NAME
    digest = source_digest(settings)
    if stamp.is_file() and stamp.read_text().strip() == digest:
        return False

    started = time.monotonic()
    staging = target.with_name(f"{target.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    requirement = f"{settings.repo_root / 'src'}[{','.join(EXTRAS)}]"
    # The controller's Python and the containers' are both Debian 12's CPython 3.11, so wheels fit both.
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--wheel-dir",
            staging,
            "--constraint",
            settings.repo_root / "requirements" / "constraints.txt",
            requirement,
        ],
        timeout=1800,
    )
    write_text(staging / STAMP_NAME, f"{digest}\n")
    shutil.rmtree(target, ignore_errors=True)
    staging.replace(target)
    LOG.info("wheelhouse %s built in %.0f s", target, time.monotonic() - started)
    return True
