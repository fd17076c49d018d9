"""Unit tests of the vault_kv module's decisions: what it writes, what check mode predicts, what it refuses."""

from __future__ import annotations

import pytest
from ansible_collections.retail.edge.plugins.module_utils._vault import VaultConfigError
from ansible_collections.retail.edge.plugins.module_utils._vault_kv import CasMismatch, SecretVersionUnavailable
from ansible_collections.retail.edge.plugins.modules.vault_kv import KvTask, generate_values


def params(**overrides):
    base = {
        "mount_point": "kv",
        "path": "stores/s001/pos_cache/hq",
        "state": "present",
        "data": None,
        "generate": [],
        "generate_length": 40,
        "generate_charset": "alphanumeric",
        "overwrite": True,
        "cas": None,
        "version": None,
        "versions": None,
        "custom_metadata": None,
        "max_versions": None,
        "cas_required": None,
    }
    base.update(overrides)
    return base


PATH = "stores/s001/pos_cache/hq"


def run(fake_kv, module_stub, check_mode=False, **overrides):
    module = module_stub(params(**overrides), check_mode=check_mode)
    return KvTask(module, fake_kv).run()


def test_present_creates_then_is_unchanged(fake_kv, module_stub):
    first = run(fake_kv, module_stub, data={"token": "a"})
    second = run(fake_kv, module_stub, data={"token": "a"})
    assert first["changed"] is True
    assert first["version"] == 1
    assert second["changed"] is False
    assert second["version"] == 1
    assert fake_kv.writes() == [("POST", f"kv/data/{PATH}")]


def test_present_check_mode_predicts_without_writing(fake_kv, module_stub):
    fake_kv.put(PATH, {"token": "a", "user": "u"})
    result = run(fake_kv, module_stub, check_mode=True, data={"token": "b", "user": "u"})
    assert result["changed"] is True
    assert result["version"] == 2
    assert result["changed_keys"] == ["token"]
    assert result["diff"]["after"]["data"] == {"token": "<hidden, changed>", "user": "<hidden>"}
    assert fake_kv.writes() == []


def test_cas_checked_only_when_a_write_is_needed(fake_kv, module_stub):
    fake_kv.put(PATH, {"token": "a"})
    unchanged = run(fake_kv, module_stub, data={"token": "a"}, cas=7)
    assert unchanged["changed"] is False
    with pytest.raises(CasMismatch, match="cas=7 but the current version is 1"):
        run(fake_kv, module_stub, check_mode=True, data={"token": "b"}, cas=7)


def test_patched_keep_existing_adds_missing_keys_only(fake_kv, module_stub):
    fake_kv.put(PATH, {"token": "kept"})
    result = run(fake_kv, module_stub, state="patched", overwrite=False, data={"token": "new", "hmac_key": "added"})
    assert result["changed_keys"] == ["hmac_key"]
    assert fake_kv.secrets[PATH]["versions"][2]["data"] == {"token": "kept", "hmac_key": "added"}
    assert fake_kv.writes() == [("PATCH", f"kv/data/{PATH}")]


def test_patched_keep_existing_creates_missing_secret(fake_kv, module_stub):
    result = run(fake_kv, module_stub, state="patched", overwrite=False, generate=["token"])
    assert result["changed"] is True
    assert len(fake_kv.secrets[PATH]["versions"][1]["data"]["token"]) == 40


def test_patched_null_removes_key(fake_kv, module_stub):
    fake_kv.put(PATH, {"token": "a", "old": "x"})
    result = run(fake_kv, module_stub, state="patched", data={"old": None})
    assert result["changed_keys"] == ["old"]
    assert fake_kv.secrets[PATH]["versions"][2]["data"] == {"token": "a"}


def test_patched_on_deleted_latest_fails(fake_kv, module_stub):
    fake_kv.put(PATH, {"token": "a"})
    fake_kv.delete(PATH, 1)
    with pytest.raises(SecretVersionUnavailable, match="latest version 1 was deleted"):
        run(fake_kv, module_stub, state="patched", data={"token": "b"})


def test_present_keep_existing_writes_nothing_when_secret_exists(fake_kv, module_stub):
    fake_kv.put(PATH, {"token": "a"})
    result = run(fake_kv, module_stub, overwrite=False, data={"token": "b"})
    assert result["changed"] is False
    assert fake_kv.writes() == []


def test_generate_rotates_every_run(fake_kv, module_stub):
    fake_kv.put(PATH, {"token": "a", "hmac_key": "h"})
    result = run(fake_kv, module_stub, state="patched", generate=["token"])
    assert result["changed_keys"] == ["token"]
    new = fake_kv.secrets[PATH]["versions"][2]["data"]
    assert new["hmac_key"] == "h"
    assert new["token"] != "a"


def test_generate_and_data_overlap_fails(fake_kv, module_stub):
    with pytest.raises(VaultConfigError, match=r"\['token'\] are in both"):
        run(fake_kv, module_stub, data={"token": "a"}, generate=["token"])


def test_generate_values_charset_and_length():
    values = generate_values(["a", "b"], 24, "hex")
    assert all(len(value) == 24 for value in values.values())
    assert set("".join(values.values())) <= set("0123456789abcdef")
    assert values["a"] != values["b"]
    with pytest.raises(VaultConfigError, match="too short"):
        generate_values(["a"], 8, "hex")


def test_custom_metadata_change_alone(fake_kv, module_stub):
    fake_kv.put(PATH, {"token": "a"})
    result = run(fake_kv, module_stub, data={"token": "a"}, custom_metadata={"owner": "pos"})
    assert result["changed"] is True
    assert result["version"] == 1
    assert fake_kv.secrets[PATH]["custom_metadata"] == {"owner": "pos"}


def test_read_warns_without_no_log(fake_kv, module_stub):
    fake_kv.put(PATH, {"token": "a"})
    module = module_stub(params(state="read"), no_log=False)
    result = KvTask(module, fake_kv).run()
    assert result["data"] == {"token": "a"}
    assert "no_log" in module.warnings[0]


@pytest.mark.parametrize(
    ("state", "versions", "expected"),
    [
        ("deleted", None, [2]),
        ("deleted", [1, 9], [1]),
        ("destroyed", [1], [1]),
    ],
)
def test_version_states(fake_kv, module_stub, state, versions, expected):
    fake_kv.put(PATH, {"token": "a"})
    fake_kv.put(PATH, {"token": "b"})
    result = run(fake_kv, module_stub, state=state, versions=versions)
    assert result["changed_versions"] == expected
    assert result["diff"]["after"][str(expected[0])] == state
    again = run(fake_kv, module_stub, state=state, versions=versions)
    assert again["changed"] is False


def test_undelete_restores(fake_kv, module_stub):
    fake_kv.put(PATH, {"token": "a"})
    fake_kv.delete(PATH, 1)
    result = run(fake_kv, module_stub, state="undeleted", versions=[1])
    assert result["changed_versions"] == [1]
    assert fake_kv.secrets[PATH]["versions"][1]["deletion_time"] == ""


def test_absent(fake_kv, module_stub):
    fake_kv.put(PATH, {"token": "a"})
    first = run(fake_kv, module_stub, state="absent")
    second = run(fake_kv, module_stub, state="absent")
    assert first["changed"] is True
    assert second["changed"] is False
    assert PATH not in fake_kv.secrets


def test_metadata_only_secret_counts_as_missing(fake_kv, module_stub):
    fake_kv._metadata_post(PATH, "", {"custom_metadata": {"owner": "pos"}})
    result = run(fake_kv, module_stub, state="patched", data={"token": "a"})
    assert result["changed"] is True
    assert result["version"] == 1


def test_cas_required_secret_predicted(fake_kv, module_stub):
    fake_kv.put(PATH, {"token": "a"})
    fake_kv.secrets[PATH]["cas_required"] = True
    with pytest.raises(CasMismatch, match="pass cas=1"):
        run(fake_kv, module_stub, check_mode=True, data={"token": "b"})
