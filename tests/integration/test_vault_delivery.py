"""Secret delivery against the real lab OpenBao: workload_secrets, rotate_secrets.yml, and what -vvv output shows."""

from __future__ import annotations

import grp
import secrets
import stat
from pathlib import Path

from tests.fixtures_vault import OpenBaoServer
from tests.integration.vault_support import (
    POS_ONLY_WORKLOADS,
    env_file_values,
    play,
    pos_host_vars,
    restart_count,
    unique_store,
    write_inventory,
)
from tests.support import ROOT

ROTATE_PLAYBOOK = str(ROOT / "playbooks" / "rotate_secrets.yml")
POS_ONLY = {"vault_store_bootstrap_workloads": POS_ONLY_WORKLOADS}


def _recap_changed(stdout: str, host: str) -> int:
    line = next(line for line in stdout.splitlines() if line.startswith(f"{host} "))
    return int(line.split("changed=")[1].split()[0])


def _setup_stores(openbao: OpenBaoServer, root: Path, stores: list[str]) -> Path:
    inventory = write_inventory(
        root / "inventory.yml", {f"{store}-pos": pos_host_vars(root, store) for store in stores}
    )
    play("bootstrap.yml", openbao, inventory=inventory, extra_vars=POS_ONLY)
    return inventory


def test_workload_secrets_restart_only_on_change(openbao: OpenBaoServer, tmp_path: Path):
    store = unique_store("wl")
    host = f"{store}-pos"
    inventory = _setup_stores(openbao, tmp_path, [store])
    secret_path = f"stores/{store}/pos/hq_sync"

    play("workload_deploy.yml", openbao, inventory=inventory)
    vault_values = openbao.read(secret_path)
    assert env_file_values(tmp_path, store) == {
        "POS_HQ_API_KEY": vault_values["api_key"],
        "POS_HQ_HMAC_KEY": vault_values["hmac_key"],
    }
    env_file = Path(pos_host_vars(tmp_path, store)["workload_secrets_env_file"])
    info = env_file.stat()
    assert stat.S_IMODE(info.st_mode) == 0o640
    assert info.st_uid == 0
    assert info.st_gid == grp.getgrnam("daemon").gr_gid
    assert restart_count(tmp_path, store) == 1

    unchanged = play("workload_deploy.yml", openbao, inventory=inventory)
    assert _recap_changed(unchanged.stdout, host) == 0, unchanged.stdout[-3000:]
    assert restart_count(tmp_path, store) == 1

    new_key = secrets.token_hex(20)
    openbao.write(secret_path, {"api_key": new_key, "hmac_key": vault_values["hmac_key"]})

    preview = play("workload_deploy.yml", openbao, "--check", "--diff", inventory=inventory)
    assert "+    POS_HQ_API_KEY: <hidden, changed>" in preview.stdout, preview.stdout[-3000:]
    assert env_file_values(tmp_path, store)["POS_HQ_API_KEY"] == vault_values["api_key"]
    assert restart_count(tmp_path, store) == 1

    play("workload_deploy.yml", openbao, inventory=inventory)
    assert env_file_values(tmp_path, store)["POS_HQ_API_KEY"] == new_key
    assert restart_count(tmp_path, store) == 2

    play("workload_deploy.yml", openbao, inventory=inventory)
    assert restart_count(tmp_path, store) == 2


def test_rotate_secrets_only_selected_stores(openbao: OpenBaoServer, tmp_path: Path):
    rotated, kept = [unique_store("r1"), unique_store("r2")], unique_store("r3")
    inventory = _setup_stores(openbao, tmp_path, [*rotated, kept])
    play("workload_deploy.yml", openbao, inventory=inventory)
    before = {store: openbao.read(f"stores/{store}/pos/hq_sync") for store in [*rotated, kept]}

    proc = play(
        ROTATE_PLAYBOOK,
        openbao,
        inventory=inventory,
        extra_vars={
            "rotate_secrets_workload": "pos",
            "rotate_secrets_secret": "hq_sync",
            "rotate_secrets_fields": ["api_key"],
            "rotate_secrets_stores": rotated,
            "rotate_secrets_deploy_role": "test_pos_deploy",
        },
    )

    for store in rotated:
        after = openbao.read(f"stores/{store}/pos/hq_sync")
        assert after["api_key"] != before[store]["api_key"]
        assert after["hmac_key"] == before[store]["hmac_key"]
        assert env_file_values(tmp_path, store)["POS_HQ_API_KEY"] == after["api_key"]
        assert restart_count(tmp_path, store) == 2
    assert openbao.read(f"stores/{kept}/pos/hq_sync") == before[kept]
    assert restart_count(tmp_path, kept) == 1
    # serial: 1 runs the play's tasks once per host, so each task banner shows up once per rotated store.
    assert proc.stdout.count("TASK [Write new random values for api_key of store") == len(rotated)


def test_vault_plays_never_print_secret_values(openbao: OpenBaoServer, tmp_path: Path):
    store = unique_store("log")
    kv_path = f"tests/{store}/pos/db"
    written = {"password": secrets.token_hex(20), "user": secrets.token_hex(20)}
    change = {"password": secrets.token_hex(20)}
    inventory = write_inventory(tmp_path / "inventory.yml", {f"{store}-pos": pos_host_vars(tmp_path, store)})
    verbose = ("-vvv", "--diff")

    runs = [play("bootstrap.yml", openbao, *verbose, inventory=inventory, extra_vars=POS_ONLY)]
    runs.append(play("workload_deploy.yml", openbao, *verbose, inventory=inventory))
    runs.append(
        play(
            "kv_idempotence.yml",
            openbao,
            *verbose,
            extra_vars={"test_path": kv_path, "test_data": written, "test_change": change},
        )
    )
    runs.append(
        play(
            "wrapped_once.yml",
            openbao,
            *verbose,
            token=False,
            extra_vars={"test_store": store, "test_admin_token": openbao.root_token},
        )
    )
    runs.append(
        play(
            ROTATE_PLAYBOOK,
            openbao,
            *verbose,
            inventory=inventory,
            extra_vars={
                "rotate_secrets_workload": "pos",
                "rotate_secrets_secret": "hq_sync",
                "rotate_secrets_fields": ["api_key", "hmac_key"],
                "rotate_secrets_stores": [store],
                "rotate_secrets_deploy_role": "test_pos_deploy",
            },
        )
    )
    output = "\n".join(proc.stdout + proc.stderr for proc in runs)

    assert "ESTABLISH LOCAL CONNECTION" in output, "the plays did not run at -vvv"
    values = openbao.all_values(f"stores/{store}") | openbao.all_values(f"tests/{store}")
    values |= set(written.values()) | set(change.values())
    assert len(values) >= 6, f"expected the bootstrap, rotation and test values, found {len(values)}"
    leaked = sorted(value for value in values if value in output)
    assert leaked == [], f"{len(leaked)} secret values appear in the -vvv output"
    assert openbao.root_token not in output
