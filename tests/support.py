"""Helpers shared by the pytest suites: paths, ports and ansible-playbook runs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
SHARED_DIR = ROOT.parent / "shared"
PVE_API_SCHEMA = SHARED_DIR / "pve-api" / "apidata.json"
COLLECTIONS_PATH = ROOT / ".build" / "collections"


def ensure_collection_link() -> None:
    """Make ROOT importable by Ansible as retail.edge (setup.sh does the same)."""
    parent = COLLECTIONS_PATH / "ansible_collections" / "retail"
    parent.mkdir(parents=True, exist_ok=True)
    link = parent / "edge"
    if not link.is_symlink() or link.resolve() != ROOT:
        if link.is_symlink():
            link.unlink()
        link.symlink_to(ROOT)


def ansible_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return an environment in which ansible-* commands find this collection and the venv's tools."""
    ensure_collection_link()
    env = dict(os.environ)
    env.update(
        {
            "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_COLLECTIONS_PATH": f"{COLLECTIONS_PATH}{os.pathsep}{ROOT / 'collections'}",
            "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_LOCAL_TEMP": str(ROOT / ".build" / "ansible-tmp"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    if extra:
        env.update(extra)
    return env


def run_playbook(
    playbook: str | Path,
    *args: str,
    inventory: str | Path = "localhost,",
    extra_vars: Mapping[str, object] | None = None,
    env: Mapping[str, str] | None = None,
    expect_rc: int | None = 0,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Run ansible-playbook and return the finished process, failing the test on an unexpected exit code.

    extra_vars travel as JSON so that types (ints, lists, dicts) survive.
    """
    cmd = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(playbook), *args]
    if str(inventory) == "localhost,":
        # The controller itself, reached without SSH, with the venv's interpreter so that
        # modules find proxmoxer, hvac and the other controller-side libraries.
        cmd += ["-e", json.dumps({"ansible_connection": "local", "ansible_python_interpreter": sys.executable})]
    if extra_vars:
        cmd += ["-e", json.dumps(dict(extra_vars))]
    proc = subprocess.run(
        cmd, cwd=ROOT, env=ansible_env(env), capture_output=True, text=True, timeout=timeout, check=False
    )
    if expect_rc is not None and proc.returncode != expect_rc:
        raise AssertionError(
            f"ansible-playbook {playbook} exited {proc.returncode}, expected {expect_rc}\n"
            f"--- stdout ---\n{proc.stdout[-8000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"
        )
    return proc


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free on host when checked; another process may take it before the caller binds."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 30.0) -> None:
    """Wait until something accepts TCP connections on host:port, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f} s")


def run(cmd: Sequence[str], *, cwd: Path = ROOT, timeout: float = 900, **kwargs) -> subprocess.CompletedProcess[str]:
    """Run a command with the venv first on PATH and return the finished process without checking its exit code."""
    return subprocess.run(
        list(cmd), cwd=cwd, env=ansible_env(), capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )


def run_module(
    module: str,
    module_args: Mapping[str, object],
    *,
    check: bool = False,
    diff: bool = False,
    env: Mapping[str, str] | None = None,
) -> dict:
    """Run one module on localhost through ansible's ad-hoc mode and return its result dict."""
    cmd = [str(VENV_BIN / "ansible"), "localhost", "-m", module]
    if module_args:
        cmd += ["-a", json.dumps(dict(module_args))]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    extra = {"ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json", "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1"}
    run_env = ansible_env({**extra, **(env or {})})
    proc = subprocess.run(cmd, cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=300, check=False)
    try:
        output = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        output_text = f"{proc.stdout}\n{proc.stderr}"
        raise AssertionError(f"{module} printed no JSON (exit {proc.returncode}):\n{output_text}") from exc
    return output["plays"][0]["tasks"][0]["hosts"]["localhost"]


def pve_api_schema_index(path: Path = PVE_API_SCHEMA) -> dict[str, dict]:
    """Return the official PVE API schema as {path: {method: definition}}, read from apidata.json."""
    index: dict[str, dict] = {}
    pending = list(json.loads(path.read_text()))
    while pending:
        node = pending.pop()
        index[node["path"]] = node.get("info", {})
        pending.extend(node.get("children", []))
    return index


def kv_secret_values(url: str, token: str, ca_file: str, mount: str = "kv", folder: str = "") -> set[str]:
    """Read the values of every version that still has data, of every secret below folder of a KV v2 mount.

    Values are returned as str (a number 5 becomes "5"). Deleted and destroyed versions are skipped
    because the server no longer returns their data.
    """
    import hvac  # noqa: PLC0415 - `ansible-test units` loads this file in a virtualenv without hvac
    import hvac.exceptions  # noqa: PLC0415

    client = hvac.Client(url=url, token=token, verify=ca_file)
    kv = client.secrets.kv.v2
    values: set[str] = set()
    folders = [folder.strip("/")]
    while folders:
        current = folders.pop()
        try:
            keys = kv.list_secrets(path=current, mount_point=mount)["data"]["keys"]
        except hvac.exceptions.InvalidPath:
            continue
        for key in keys:
            path = f"{current}/{key}" if current else key
            if key.endswith("/"):
                folders.append(path.rstrip("/"))
                continue
            versions = kv.read_secret_metadata(path=path, mount_point=mount)["data"]["versions"]
            for number, entry in versions.items():
                if entry["destroyed"] or entry["deletion_time"]:
                    continue
                data = kv.read_secret_version(
                    path=path, version=int(number), mount_point=mount, raise_on_deleted_version=True
                )["data"]["data"]
                values.update(str(value) for value in data.values())
    return values


def secret_values_in(
    text: str, *, url: str, token: str, ca_file: str, mount: str = "kv", folder: str = "", min_length: int = 8
) -> list[str]:
    """Return the sorted secret values below folder of a KV v2 mount that occur in text, such as a -vvv log.

    Values shorter than min_length characters are not searched for, because short values such as
    "5m" or "true" also occur in any Ansible log by chance.
    """
    values = kv_secret_values(url, token, ca_file, mount, folder)
    return sorted(value for value in values if len(value) >= min_length and value in text)
