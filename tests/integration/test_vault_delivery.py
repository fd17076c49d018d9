"""Secret delivery against the real lab OpenBao: workload_secrets, rotate_secrets.yml, and what -vvv output shows."""

from __future__ import annotations

import grp
import secrets
import stat
from pathlib import Path

from tests.fixtures_vault import OpenBaoServer
from tests.integration.vault_support import (
    BOOTSTRAP_PLAYBOOK,
    POS_ONLY,
    ROTATE_PLAYBOOK,
    env_file_values,
    play,
    pos_host_vars,
    recap_changed,
    restart_count,
    unique_store,
    write_inventory,
)

TOKEN, HMAC = "RETAIL_EDGE_POS_HQ_TOKEN", "RETAIL_EDGE_POS_HMAC_KEY"


def _bootstrapped_inventory(openbao: OpenBaoServer, root: Path, stores: list[str]) -> Path:
    inventory = write_inventory(root / "inventory.yml", root, stores)
    play(BOOTSTRAP_PLAYBOOK, openbao, inventory=inventory, extra_vars=POS_ONLY)
    return inventory


def _rotation_vars(stores: list[str], fields: list[str]) -> dict[str, object]:
    return {
        "rotate_secrets_workload": "pos_cache",
        "rotate_secrets_secret": "hq",
        "rotate_secrets_fields": fields,
        "rotate_secrets_stores": stores,
        "rotate_secrets_deploy_role": "test_pos_deploy",
    }


def test_workload_secrets_restart_only_on_change(openbao: OpenBaoServer, tmp_path: Path):
    store = unique_store("wl")
    host = f"{store}-pos-cache"
    inventory = _bootstrapped_inventory(openbao, tmp_path, [store])
    secret_path = f"stores/{store}/pos_cache/hq"

    play("workload_deploy.yml", openbao, inventory=inventory)
    vault_values = openbao.read(secret_path)
    assert env_file_values(tmp_path, store) == {TOKEN: vault_values["token"], HMAC: vault_values["hmac_key"]}
    info = Path(pos_host_vars(tmp_path, store)["workload_secrets_env_file"]).stat()
    assert stat.S_IMODE(info.st_mode) == 0o640
    assert info.st_uid == 0
    assert info.st_gid == grp.getgrnam("daemon").gr_gid
    assert restart_count(tmp_path, store) == 1

    unchanged = play("workload_deploy.yml", openbao, inventory=inventory)
    assert recap_changed(unchanged.stdout, host) == 0, unchanged.stdout[-3000:]
    assert restart_count(tmp_path, store) == 1

    new_token = secrets.token_hex(20)
    openbao.write(secret_path, {"token": new_token, "hmac_key": vault_values["hmac_key"]})

    preview = play("workload_deploy.yml", openbao, "--check", "--diff", inventory=inventory)
    assert f"+    {TOKEN}: <hidden, changed>" in preview.stdout, preview.stdout[-3000:]
    assert f"     {HMAC}: <hidden>" in preview.stdout
    assert env_file_values(tmp_path, store)[TOKEN] == vault_values["token"]
    assert restart_count(tmp_path, store) == 1

    play("workload_deploy.yml", openbao, inventory=inventory)
    assert env_file_values(tmp_path, store) == {TOKEN: new_token, HMAC: vault_values["hmac_key"]}
    assert restart_count(tmp_path, store) == 2


def test_rotate_secrets_only_selected_stores(openbao: OpenBaoServer, tmp_path: Path):
    rotated, kept = [unique_store("r1"), unique_store("r2")], unique_store("r3")
    inventory = _bootstrapped_inventory(openbao, tmp_path, [*rotated, kept])
    play("workload_deploy.yml", openbao, inventory=inventory)
    before = {store: openbao.read(f"stores/{store}/pos_cache/hq") for store in [*rotated, kept]}

    proc = play(ROTATE_PLAYBOOK, openbao, inventory=inventory, extra_vars=_rotation_vars(rotated, ["token"]))

    for store in rotated:
        after = openbao.read(f"stores/{store}/pos_cache/hq")
        assert after["token"] != before[store]["token"]
        assert after["hmac_key"] == before[store]["hmac_key"]
        assert env_file_values(tmp_path, store)[TOKEN] == after["token"]
        assert restart_count(tmp_path, store) == 2
    assert openbao.read(f"stores/{kept}/pos_cache/hq") == before[kept]
    assert restart_count(tmp_path, kept) == 1
    # serial: 1 runs the play's tasks once per host, so the banner shows up once per rotated store.
    assert proc.stdout.count("TASK [Write new random values to Vault for store") == len(rotated)


def test_vault_plays_never_print_secret_values(openbao: OpenBaoServer, tmp_path: Path):
    store = unique_store("log")
    kv_path = f"tests/{store}/pos_cache/db"
    written = {"password": secrets.token_hex(20), "user": secrets.token_hex(20)}
    change = {"password": secrets.token_hex(20)}
    inventory = write_inventory(tmp_path / "inventory.yml", tmp_path, [store])
    verbose = ("-vvv", "--diff")

    runs = [
        play(BOOTSTRAP_PLAYBOOK, openbao, *verbose, inventory=inventory, extra_vars=POS_ONLY),
        play("workload_deploy.yml", openbao, *verbose, inventory=inventory),
        play(
            "kv_idempotence.yml",
            openbao,
            *verbose,
            extra_vars={"test_path": kv_path, "test_data": written, "test_change": change},
        ),
        play(
            "wrapped_once.yml",
            openbao,
            *verbose,
            token=False,
            extra_vars={"test_store": store, "test_admin_token": openbao.root_token},
        ),
        play(ROTATE_PLAYBOOK, openbao, *verbose, inventory=inventory, extra_vars=_rotation_vars([store], ["token"])),
    ]
    output = "\n".join(proc.stdout + proc.stderr for proc in runs)

    assert "ESTABLISH LOCAL CONNECTION" in output, "the plays did not run at -vvv"
    values = openbao.all_values(f"stores/{store}") | openbao.all_values(f"tests/{store}")
    # kv_idempotence.yml only previews test_change in check mode, so Vault never stores that value.
    test_values = set(written.values()) | set(change.values())
    values |= test_values
    # token and hmac_key from the bootstrap, the rotated token, and the three test values.
    assert len(values) >= 6, f"expected at least 6 secret values, found {len(values)}"
    leaked = set(openbao.values_in(output, f"stores/{store}")) | set(openbao.values_in(output, f"tests/{store}"))
    leaked |= {value for value in test_values if value in output}
    assert leaked == set(), f"{len(leaked)} of {len(values)} secret values appear in the -vvv output"
    assert openbao.root_token not in output


def test_rotate_secrets_rejects_bad_request(openbao: OpenBaoServer, tmp_path: Path):
    store = unique_store("rx")
    inventory = write_inventory(tmp_path / "inventory.yml", tmp_path, [store])

    missing = play(ROTATE_PLAYBOOK, openbao, inventory=inventory, extra_vars={}, expect_rc=2)
    unknown = play(
        ROTATE_PLAYBOOK, openbao, inventory=inventory, extra_vars=_rotation_vars(["s-unknown"], ["token"]), expect_rc=2
    )

    assert "Set rotate_secrets_workload, rotate_secrets_secret" in missing.stdout
    assert "belongs to store(s) ['s-unknown']" in unknown.stdout, unknown.stdout[-3000:]
    assert "Nothing was rotated" in unknown.stdout
    assert "TASK [Write new random values" not in missing.stdout + unknown.stdout


def test_rotate_secrets_default_redeploy_role(openbao: OpenBaoServer, tmp_path: Path):
    """Without rotate_secrets_deploy_role the rotation runs the workload's own role, as deploy.yml does."""
    store = unique_store("rd")
    inventory = _bootstrapped_inventory(openbao, tmp_path, [store])
    before = openbao.read(f"stores/{store}/pos_cache/hq")
    request = {
        key: value for key, value in _rotation_vars([store], ["token"]).items() if key != "rotate_secrets_deploy_role"
    }

    # The test hosts lack the role's settings (retail_edge_hq_url, the wheelhouse), so retail.edge.pos_cache
    # stops at its argument check, its first task, before it changes anything on this machine.
    proc = play(ROTATE_PLAYBOOK, openbao, "--check", inventory=inventory, extra_vars=request, expect_rc=2)

    assert "TASK [retail.edge.pos_cache : Validating arguments against arg spec" in proc.stdout, proc.stdout[-3000:]
    assert "TASK [retail.edge.workload_secrets" not in proc.stdout
    assert openbao.read(f"stores/{store}/pos_cache/hq") == before


def test_rotate_secrets_needs_deploy_role(openbao: OpenBaoServer, tmp_path: Path):
    """A workload without a role of its own is rejected before Vault changes."""
    store = unique_store("rn")
    inventory = _bootstrapped_inventory(openbao, tmp_path, [store])
    before = openbao.all_values(f"stores/{store}")
    request = {
        **_rotation_vars([store], ["token"]),
        "rotate_secrets_workload": "loyalty",
        "rotate_secrets_hosts": "pos_cache",
    }
    del request["rotate_secrets_deploy_role"]

    proc = play(ROTATE_PLAYBOOK, openbao, inventory=inventory, extra_vars=request, expect_rc=2)

    assert "no role retail.edge.loyalty to redeploy workload 'loyalty'" in proc.stdout, proc.stdout[-3000:]
    assert "Nothing was rotated" in proc.stdout
    assert "TASK [Write new random values" not in proc.stdout
    assert openbao.all_values(f"stores/{store}") == before
