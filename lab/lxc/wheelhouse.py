"""The services' wheelhouse: the retail_edge package and every dependency as wheels, built on the controller.

Roles copy the wheels a service needs into its host and install them with pip --no-index, so a store (and a
lab container) never needs PyPI. Which wheels a service needs is recorded in the manifest ``wheelhouse.json``
next to the wheels (format in ``docs/service-roles.md``): one wheel set per optional feature of the package,
each set the full list of wheel files its requirement resolves to.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ._proc import LOG, LabError, run, write_text
from .settings import LabSettings

PACKAGE = "retail-edge-services"
# Every optional feature of the services package: the wheelhouse serves all four service roles.
EXTRAS = ("rules", "vision", "onnx", "pos")
STAMP_NAME = ".retail-edge-wheelhouse.sha256"
MANIFEST_NAME = "wheelhouse.json"
MANIFEST_FORMAT = 1
SET_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


def source_digest(settings: LabSettings) -> str:
    """Hash the package sources and the pins they are built with, skipping caches and build output."""
    src = settings.repo_root / "src"
    digest = hashlib.sha256()
    inputs = [path for path in sorted(src.rglob("*")) if path.is_file() and not _is_build_output(path, src)]
    inputs.append(settings.repo_root / "requirements" / "constraints.txt")
    for path in inputs:
        digest.update(str(path.relative_to(settings.repo_root)).encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(f"{','.join(EXTRAS)};manifest {MANIFEST_FORMAT}".encode())
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
    build_wheelhouse(settings.repo_root, target, stamp_digest=digest)
    return True


def build_wheelhouse(
    repo_root: Path, target: Path, extra_sets: Mapping[str, str] | None = None, stamp_digest: str | None = None
) -> dict[str, object]:
    """Build the package and its dependencies into target (replaced whole) and write the manifest.

    extra_sets adds named requirements outside the package, such as ``{"onnxruntime-gpu": "onnxruntime-gpu"}``
    for GPU nodes; their wheels are built into the same directory.
    """
    started = time.monotonic()
    staging = target.with_name(f"{target.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    extra_sets = dict(extra_sets or {})
    requirement = f"{repo_root / 'src'}[{','.join(EXTRAS)}]"
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
            repo_root / "requirements" / "constraints.txt",
            requirement,
            *extra_sets.values(),
        ],
        timeout=1800,
    )
    manifest = write_manifest(staging, {**default_sets(package_version(staging)), **extra_sets})
    if stamp_digest is not None:
        write_text(staging / STAMP_NAME, f"{stamp_digest}\n")
    shutil.rmtree(target, ignore_errors=True)
    staging.replace(target)
    LOG.info("wheelhouse %s built in %.0f s", target, time.monotonic() - started)
    return manifest


def package_version(wheel_dir: Path) -> str:
    """Return the version of the services package's wheel in wheel_dir."""
    prefix = PACKAGE.replace("-", "_") + "-"
    versions = sorted({path.name[len(prefix) :].split("-")[0] for path in wheel_dir.glob(f"{prefix}*.whl")})
    if len(versions) != 1:
        raise LabError(f"expected one {PACKAGE} wheel in {wheel_dir}, found versions {versions or 'none'}")
    return versions[0]


def package_file(wheel_dir: Path, version: str) -> str:
    """Return the file name of the services package's wheel."""
    return next(wheel_dir.glob(f"{PACKAGE.replace('-', '_')}-{version}-*.whl")).name


def default_sets(version: str) -> dict[str, str]:
    """Return the wheel sets of the lab wheelhouse: 'base' (the package alone) and one per extra."""
    sets = {"base": f"{PACKAGE}=={version}"}
    sets.update({extra: f"{PACKAGE}[{extra}]=={version}" for extra in EXTRAS})
    return sets


def resolve_files(wheel_dir: Path, requirement: str) -> list[str]:
    """Return the wheel files that pip installs for requirement from wheel_dir alone (pip's installation report).

    The resolution runs under this Python, so wheel_dir must be built for the target's Python and platform
    (both Debian 12 CPython 3.11 in the lab).
    """
    with tempfile.TemporaryDirectory(prefix="wheelhouse-report-") as scratch:
        report_path = Path(scratch) / "report.json"
        run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--dry-run",
                "--ignore-installed",
                "--quiet",
                "--no-index",
                "--find-links",
                wheel_dir,
                "--report",
                report_path,
                requirement,
            ],
            timeout=300,
        )
        report = json.loads(report_path.read_text())
    files = []
    for item in report["install"]:
        path = Path(unquote(urlsplit(item["download_info"]["url"]).path))
        if path.parent != wheel_dir.resolve() or path.suffix != ".whl":
            raise LabError(f"{requirement} resolved to {path}, which is not a wheel in {wheel_dir}")
        files.append(path.name)
    return sorted(files)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(wheel_dir: Path, sets: Mapping[str, str]) -> dict[str, object]:
    """Resolve each named requirement against wheel_dir and write the manifest the service roles read."""
    for name in sets:
        if not SET_NAME_PATTERN.match(name):
            raise LabError(f"invalid wheel set name {name!r}: use lower-case letters, digits and '-'")
    version = package_version(wheel_dir)
    manifest: dict[str, object] = {
        "format": MANIFEST_FORMAT,
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "package": {"name": PACKAGE, "version": version, "file": package_file(wheel_dir, version)},
        # SHA-256 of every wheel: roles compare them to tell whether a host's copy is current.
        "wheels": {path.name: _sha256(path) for path in sorted(wheel_dir.glob("*.whl"))},
        "sets": {
            name: {"requirement": requirement, "files": resolve_files(wheel_dir, requirement)}
            for name, requirement in sorted(sets.items())
        },
    }
    write_text(wheel_dir / MANIFEST_NAME, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest
