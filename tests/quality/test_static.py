"""Static checks of the whole collection, run as tests so `make test` reports them in one summary."""

from __future__ import annotations

import tarfile

import pytest
import yaml

from tests.support import ROOT, VENV_BIN, run


def _assert_ok(proc, what: str) -> None:
    output = f"{proc.stdout[-12000:]}\n{proc.stderr[-6000:]}"
    assert proc.returncode == 0, f"{what} failed (exit {proc.returncode}):\n{output}"


def test_ruff_clean():
    _assert_ok(run([str(VENV_BIN / "ruff"), "check", "."]), "ruff check")
    _assert_ok(run([str(VENV_BIN / "ruff"), "format", "--check", "."]), "ruff format --check")


def test_ansible_lint_production():
    proc = run([str(VENV_BIN / "ansible-lint"), "--profile", "production", "--offline", "--nocolor"])
    _assert_ok(proc, "ansible-lint --profile production")


@pytest.mark.slow
def test_ansible_test_sanity():
    _assert_ok(run([str(ROOT / "scripts" / "ansible_test.sh"), "sanity"], timeout=1800), "ansible-test sanity")


def test_ansible_test_units():
    proc = run([str(ROOT / "scripts" / "ansible_test.sh"), "units"], timeout=900)
    _assert_ok(proc, "ansible-test units")


def test_galaxy_build_tarball(tmp_path):
    proc = run([str(VENV_BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path), str(ROOT)])
    _assert_ok(proc, "ansible-galaxy collection build")
    tarball = tmp_path / "retail-edge-0.1.0.tar.gz"
    assert tarball.is_file()
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
    assert "MANIFEST.json" in names
    assert "meta/runtime.yml" in names
    leaked = [name for name in names if name.startswith((".venv", ".build", ".lab", "tests/output"))]
    assert leaked == [], f"build_ignore misses {leaked[:5]}"


def test_execution_environment_build_context(tmp_path):
    context = tmp_path / "context"
    definition = ROOT / "execution-environment.yml"
    builder = [str(VENV_BIN / "ansible-builder"), "create", "--file", str(definition)]
    proc = run([*builder, "--context", str(context), "--output-filename", "Containerfile"])
    _assert_ok(proc, "ansible-builder create")
    containerfile = (context / "Containerfile").read_text()
    assert "ansible-galaxy" in containerfile
    build = context / "_build"
    galaxy_reqs = yaml.safe_load((build / "requirements.yml").read_text())
    names = {entry["name"] for entry in galaxy_reqs["collections"]}
    assert {"retail.edge", "community.general", "ansible.posix"} <= names
    python_reqs = (build / "requirements.txt").read_text()
    for package in ("proxmoxer", "hvac", "requests"):
        assert package in python_reqs
    assert "ceph-common" in (build / "bindep.txt").read_text()
