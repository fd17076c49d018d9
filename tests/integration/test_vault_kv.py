"""vault_kv module and lookup against the real lab OpenBao: idempotence, check mode, diff, cas, deleted versions."""

from __future__ import annotations

import re
import secrets

from tests.fixtures_vault import OpenBaoServer
from tests.integration.vault_support import play, unique_store


def test_kv_write_twice_then_check_mode(openbao: OpenBaoServer):
    path = f"tests/{unique_store('kv')}/pos/db"
    old_value, new_value = secrets.token_hex(20), secrets.token_hex(20)

    proc = play(
        "kv_idempotence.yml",
        openbao,
        "--diff",
        extra_vars={
            "test_path": path,
            "test_data": {"password": old_value, "user": "pos"},
            "test_change": {"password": new_value},
        },
    )

    metadata = openbao.metadata(path)
    assert metadata["current_version"] == 1, "check mode wrote a new version"
    assert openbao.read(path) == {"password": old_value, "user": "pos"}
    assert metadata["custom_metadata"] == {"owner": "pos"}
    assert re.search(r"^\+\s+password: <hidden, changed>$", proc.stdout, re.MULTILINE), proc.stdout[-3000:]
    assert re.search(r"^\s+user: <hidden>$", proc.stdout, re.MULTILINE)
    assert old_value not in proc.stdout + proc.stderr
    assert new_value not in proc.stdout + proc.stderr


def test_kv_cas_mismatch_fails_clearly(openbao: OpenBaoServer):
    path = f"tests/{unique_store('cas')}/pos/db"
    openbao.write(path, {"password": secrets.token_hex(20)})
    new_value = secrets.token_hex(20)

    play(
        "kv_cas.yml",
        openbao,
        extra_vars={
            "test_path": path,
            "test_data": {"password": new_value},
            "test_stale_cas": 5,
            "test_current_cas": 1,
        },
    )

    assert openbao.metadata(path)["current_version"] == 2
    assert openbao.read(path) == {"password": new_value}


def test_kv_deleted_latest_version_names_it(openbao: OpenBaoServer):
    path = f"tests/{unique_store('del')}/pos/db"
    previous = secrets.token_hex(20)
    openbao.write(path, {"password": previous})
    openbao.write(path, {"password": secrets.token_hex(20)})

    play(
        "kv_deleted.yml",
        openbao,
        extra_vars={"test_path": path, "test_previous": 1, "test_previous_password": previous},
    )

    versions = openbao.metadata(path)["versions"]
    assert versions["2"]["deletion_time"], "version 2 was not soft-deleted"
    assert not versions["1"]["deletion_time"]
