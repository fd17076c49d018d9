"""Pytest fixture `openbao`: a real lab OpenBao server (TLS, raft storage, KV v2 at kv/, AppRole) per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from lab.openbao import OpenBaoLab
from tests.support import kv_secret_values, secret_values_in

if TYPE_CHECKING:
    import hvac

# hvac is imported where it is used: tests/conftest.py loads this plugin in every pytest run,
# including `ansible-test units`, whose virtualenv has only tests/unit/requirements.txt.


@dataclass
class OpenBaoServer:
    """A started lab server plus helpers that talk to it with the root token."""

    lab: OpenBaoLab
    url: str
    ca_file: str
    root_token: str
    directory: Path

    def client(self, token: str | None = None) -> hvac.Client:
        """Return an hvac client for this server, authenticated with token (default: the root token)."""
        import hvac  # noqa: PLC0415 - see the note at the imports

        return hvac.Client(url=self.url, token=token or self.root_token, verify=self.ca_file)

    def env(self, *, token: bool = True) -> dict[str, str]:
        """Return VAULT_* variables for a process that should reach this server (with the root token by default)."""
        env = {"VAULT_ADDR": self.url, "VAULT_CACERT": self.ca_file}
        if token:
            env["VAULT_TOKEN"] = self.root_token
        return env

    def write(self, path: str, data: dict[str, Any], mount: str = "kv") -> int:
        """Write a new version of mount/path and return its version number."""
        response = self.client().secrets.kv.v2.create_or_update_secret(path=path, secret=data, mount_point=mount)
        return int(response["data"]["version"])

    def read(self, path: str, version: int | None = None, mount: str = "kv") -> dict[str, Any]:
        """Return the data of one version (default: latest) of mount/path."""
        response = self.client().secrets.kv.v2.read_secret_version(
            path=path, version=version, mount_point=mount, raise_on_deleted_version=True
        )
        return dict(response["data"]["data"])

    def metadata(self, path: str, mount: str = "kv") -> dict[str, Any]:
        return dict(self.client().secrets.kv.v2.read_secret_metadata(path=path, mount_point=mount)["data"])

    def all_values(self, folder: str = "", mount: str = "kv") -> set[str]:
        """Return the values of every readable version of every secret below folder."""
        return kv_secret_values(self.url, self.root_token, self.ca_file, mount, folder)

    def values_in(self, text: str, folder: str = "", mount: str = "kv") -> list[str]:
        """Return the secret values below folder that occur in text (see tests.support.secret_values_in)."""
        return secret_values_in(
            text, url=self.url, token=self.root_token, ca_file=self.ca_file, mount=mount, folder=folder
        )


@pytest.fixture(scope="session")
def openbao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenBaoServer]:
    """Start a real OpenBao server for the session and stop it (by PID) afterwards."""
    directory = tmp_path_factory.mktemp("openbao")
    lab = OpenBaoLab(directory / "lab")
    state = lab.start()
    try:
        yield OpenBaoServer(
            lab=lab, url=state.url, ca_file=state.ca_file, root_token=state.root_token, directory=directory
        )
    finally:
        lab.stop()
        # stop() waits for the process it started, so not even a zombie is left.
        assert lab.running_pid() is None, "the lab OpenBao server is still running after stop"
        assert not os.path.exists(f"/proc/{state.pid}"), f"OpenBao pid {state.pid} is left behind"
