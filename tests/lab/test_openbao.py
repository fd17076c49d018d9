"""Lab OpenBao: idempotent start, TLS, key files, seal and unseal, stop by PID, restart with the same data."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import hvac
import pytest
import requests

from lab.openbao import OpenBaoLab
from tests.support import VENV_BIN, run, run_module


def _cli(*args: str) -> dict:
    proc = run([str(VENV_BIN / "python"), "-m", "lab.openbao", *args])
    assert proc.returncode in (0, 3), proc.stderr
    return json.loads(proc.stdout)


def _running(pid: int) -> bool:
    """Return whether pid is a live process; a zombie waiting for init to reap it is not."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return status.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def lab(tmp_path: Path):
    lab = OpenBaoLab(tmp_path / "bao")
    yield lab
    lab.stop()


def test_openbao_lab_lifecycle(lab: OpenBaoLab, tmp_path: Path):
    directory = str(lab.directory)
    # Started by the command line, whose process exits, as an operator would start it.
    started = _cli("start", "--dir", directory)
    state = lab.start()

    assert state.pid == started["pid"], "a second start spawned another server"
    for name in ("unseal.key", "root.token", "tls/ca-key.pem", "tls/server-key.pem"):
        assert stat.S_IMODE((lab.directory / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE(lab.directory.stat().st_mode) == 0o700

    client = hvac.Client(url=state.url, token=state.root_token, verify=state.ca_file)
    mounts = client.sys.list_mounted_secrets_engines()["data"]
    assert mounts["kv/"]["type"] == "kv"
    assert mounts["kv/"]["options"]["version"] == "2"
    assert "approle/" in client.sys.list_auth_methods()["data"]
    with pytest.raises(requests.exceptions.SSLError):
        hvac.Client(url=state.url, token=state.root_token, verify=True).sys.read_health_status()
    client.secrets.kv.v2.create_or_update_secret(path="lab/check", secret={"kept": "yes"}, mount_point="kv")

    assert _cli("seal", "--dir", directory)["sealed"] is True
    assert _cli("unseal", "--dir", directory)["sealed"] is False

    assert _cli("stop", "--dir", directory)["stopped"] is True
    assert not _running(state.pid)
    assert not lab.pid_file.exists()
    status = _cli("status", "--dir", directory)
    assert status["running"] is False

    restarted = lab.start()
    assert restarted.pid != state.pid
    assert restarted.port == state.port
    client = hvac.Client(url=restarted.url, token=restarted.root_token, verify=restarted.ca_file)
    kept = client.secrets.kv.v2.read_secret_version(path="lab/check", mount_point="kv", raise_on_deleted_version=True)
    assert kept["data"]["data"] == {"kept": "yes"}


def test_module_reports_sealed_server(lab: OpenBaoLab):
    state = lab.start()
    lab.seal()
    env = {"VAULT_ADDR": state.url, "VAULT_CACERT": state.ca_file, "VAULT_TOKEN": state.root_token}

    result = run_module("retail.edge.vault_kv", {"path": "lab/check", "state": "read"}, env=env)

    assert result.get("failed") is True, result
    assert f"Vault (OpenBao) at {state.url} is sealed (HTTP 503)" in result["msg"]
    assert f"bao operator unseal -address={state.url}" in result["msg"]
