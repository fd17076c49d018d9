"""Unit tests of the KV version 2 helpers: reads of deleted versions, check-and-set errors, masked diffs."""

from __future__ import annotations

import pytest
from ansible_collections.retail.edge.plugins.module_utils._vault import VaultNotFound
from ansible_collections.retail.edge.plugins.module_utils._vault_kv import (
    HIDDEN,
    HIDDEN_CHANGED,
    CasMismatch,
    SecretVersionUnavailable,
    changed_keys,
    masked_view,
    read_secret,
    write_secret,
)


def test_read_latest(fake_kv):
    fake_kv.put("a", {"k": "1"})
    fake_kv.put("a", {"k": "2"})
    secret = read_secret(fake_kv, "kv", "a")
    assert secret.data == {"k": "2"}
    assert secret.version == 2


def test_read_missing_secret_returns_none(fake_kv):
    assert read_secret(fake_kv, "kv", "missing") is None


def test_read_missing_version_lists_versions(fake_kv):
    fake_kv.put("a", {"k": "1"})
    with pytest.raises(VaultNotFound, match=r"has no version 7; its versions are \[1\]"):
        read_secret(fake_kv, "kv", "a", version=7)


def test_read_deleted_latest_names_versions(fake_kv):
    fake_kv.put("a", {"k": "1"})
    fake_kv.put("a", {"k": "2"})
    fake_kv.put("a", {"k": "3"})
    fake_kv.delete("a", 3)
    with pytest.raises(SecretVersionUnavailable) as raised:
        read_secret(fake_kv, "kv", "a")
    message = str(raised.value)
    assert "latest version 3 was deleted at 2026-01-01T00:00:00Z" in message
    assert "Set version: 2" in message
    assert "versions=[3]" in message
    assert raised.value.readable_version == 2


def test_read_skips_deleted_older_versions_in_hint(fake_kv):
    for value in "123":
        fake_kv.put("a", {"k": value})
    fake_kv.delete("a", 2)
    fake_kv.delete("a", 3)
    with pytest.raises(SecretVersionUnavailable, match="Set version: 1"):
        read_secret(fake_kv, "kv", "a")


def test_read_destroyed_version(fake_kv):
    fake_kv.put("a", {"k": "1"})
    fake_kv._destroy_put("a", "", {"versions": [1]})
    with pytest.raises(SecretVersionUnavailable) as raised:
        read_secret(fake_kv, "kv", "a", version=1)
    assert "version 1 was destroyed" in str(raised.value)
    assert "No older version has data" in str(raised.value)
    assert "undeleted" not in str(raised.value)


def test_read_deleted_without_metadata_access(fake_kv):
    fake_kv.put("a", {"k": "1"})
    fake_kv.put("a", {"k": "2"})
    fake_kv.delete("a", 2)
    fake_kv.forbidden.add("kv/metadata/a")
    with pytest.raises(SecretVersionUnavailable, match="for example version: 1"):
        read_secret(fake_kv, "kv", "a")


def test_cas_mismatch_message(fake_kv):
    fake_kv.put("a", {"k": "1"})
    with pytest.raises(CasMismatch, match="cas=5"):
        write_secret(fake_kv, "kv", "a", {"k": "2"}, cas=5)


def test_changed_keys():
    assert changed_keys({"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 9, "d": 4}) == ["b", "c", "d"]
    assert changed_keys(None, {"a": 1}) == ["a"]
    assert changed_keys({"a": None}, {}) == ["a"]


def test_masked_view_hides_values():
    before, after = masked_view({"a": "old-secret", "b": "same"}, {"a": "new-secret", "b": "same", "c": "added"})
    assert before == {"a": HIDDEN, "b": HIDDEN}
    assert after == {"a": HIDDEN_CHANGED, "b": HIDDEN, "c": HIDDEN_CHANGED}
    assert "secret" not in repr((before, after))
