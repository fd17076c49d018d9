"""The lab wheelhouse's manifest: the wheel sets the service roles copy and install."""

from __future__ import annotations

import hashlib
import json

import pytest

from lab.lxc import wheelhouse

# The lxc_lab fixture builds the whole lab, the wheelhouse included.
pytestmark = pytest.mark.lab_containers


@pytest.fixture(scope="module")
def manifest(lxc_lab) -> dict:
    return json.loads((lxc_lab.wheelhouse / wheelhouse.MANIFEST_NAME).read_text())


def test_manifest_has_set_per_extra(manifest):
    assert sorted(manifest["sets"]) == sorted(["base", *wheelhouse.EXTRAS])
    version = manifest["package"]["version"]
    assert manifest["sets"]["base"]["requirement"] == f"retail-edge-services=={version}"
    assert manifest["sets"]["vision"]["requirement"] == f"retail-edge-services[vision]=={version}"


def test_every_set_contains_package_and_base(manifest):
    base = set(manifest["sets"]["base"]["files"])
    assert manifest["package"]["file"] in base
    for name, entry in manifest["sets"].items():
        assert base <= set(entry["files"]), name


def test_sets_hold_only_their_extras(manifest):
    def names(set_name: str) -> set[str]:
        return {file.split("-")[0].lower() for file in manifest["sets"][set_name]["files"]}

    assert "wasmtime" in names("rules")
    assert "opencv_python_headless" in names("vision")
    assert "onnxruntime" in names("onnx")
    assert "argon2_cffi" in names("pos")
    assert not names("base") & {"wasmtime", "opencv_python_headless", "numpy", "onnxruntime", "argon2_cffi"}
    assert "opencv_python_headless" not in names("rules")


def test_checksums_match_wheels(manifest, lxc_lab):
    listed = {file for entry in manifest["sets"].values() for file in entry["files"]}
    assert listed <= set(manifest["wheels"])
    for name, sha256 in manifest["wheels"].items():
        assert hashlib.sha256((lxc_lab.wheelhouse / name).read_bytes()).hexdigest() == sha256, name
