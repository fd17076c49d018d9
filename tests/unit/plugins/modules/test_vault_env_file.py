"""Unit tests of vault_env_file: quoting, parsing back, entry checks and the file it writes."""

from __future__ import annotations

import json
import os
import stat

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.retail.edge.plugins.module_utils._vault import VaultConfigError
from ansible_collections.retail.edge.plugins.modules import vault_env_file
from ansible_collections.retail.edge.plugins.modules.vault_env_file import check_entries, parse, quote, render


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("abcXYZ019", "abcXYZ019"),
        ("a/b:c,d=e@f%g+h.i-j_", "a/b:c,d=e@f%g+h.i-j_"),
        ("", ""),
        ("two words", '"two words"'),
        ('q"uote', '"q\\"uote"'),
        ("back\\slash", '"back\\\\slash"'),
        ("$HOME`id`", '"\\$HOME\\`id\\`"'),
    ],
)
def test_quote(value, written):
    assert quote(value) == written


def test_render_then_parse_round_trip():
    values = {"A": "plain", "B": 'spaced "quoted" $x `y` \\z', "C": ""}
    assert parse(render(values)) == values


def test_check_entries_rejects_bad_names():
    with pytest.raises(VaultConfigError, match="'1BAD' is not a valid variable name"):
        check_entries([{"name": "1BAD", "path": "hq", "field": "token"}])
    with pytest.raises(VaultConfigError, match="appears twice"):
        check_entries([{"name": "A", "path": "hq", "field": "t"}, {"name": "A", "path": "hq", "field": "u"}])


def run_module(monkeypatch, capsys, args, values):
    monkeypatch.setattr(
        vault_env_file, "run_with_connection", lambda options, action: (values, dict.fromkeys(values, 1))
    )
    with patch_module_args(args), pytest.raises(SystemExit):
        vault_env_file.main()
    return json.loads(capsys.readouterr().out)


def module_args(dest, **extra):
    args = {
        "url": "https://vault.example:8200",
        # Long enough that Ansible's masking of this no_log value does not hit other text.
        "token": "unit-test-token",
        "dest": str(dest),
        "path_prefix": "stores/s001/pos_cache",
        "env": [{"name": "TOKEN", "path": "hq", "field": "token"}],
        "_ansible_diff": True,
    }
    args.update(extra)
    return args


def test_writes_file_with_mode_and_reports_names_only(monkeypatch, capsys, tmp_path):
    dest = tmp_path / "secrets.env"
    result = run_module(monkeypatch, capsys, module_args(dest, mode="0640"), {"TOKEN": "s3cr3t-value"})
    assert result["changed"] is True
    assert result["changed_keys"] == ["TOKEN"]
    assert "s3cr3t-value" not in json.dumps(result)
    assert dest.read_text().endswith("TOKEN=s3cr3t-value\n")
    assert stat.S_IMODE(dest.stat().st_mode) == 0o640

    again = run_module(monkeypatch, capsys, module_args(dest, mode="0640"), {"TOKEN": "s3cr3t-value"})
    assert again["changed"] is False
    assert again["changed_keys"] == []


def test_default_mode_is_0600(monkeypatch, capsys, tmp_path):
    dest = tmp_path / "secrets.env"
    run_module(monkeypatch, capsys, module_args(dest), {"TOKEN": "v"})
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600


def test_check_mode_leaves_file(monkeypatch, capsys, tmp_path):
    dest = tmp_path / "secrets.env"
    dest.write_text("TOKEN=old\n")
    os.chmod(dest, 0o600)
    result = run_module(monkeypatch, capsys, module_args(dest, _ansible_check_mode=True), {"TOKEN": "new"})
    assert result["changed"] is True
    assert result["diff"]["after"] == {"TOKEN": "<hidden, changed>"}
    assert dest.read_text() == "TOKEN=old\n"


def test_missing_directory_fails(monkeypatch, capsys, tmp_path):
    result = run_module(monkeypatch, capsys, module_args(tmp_path / "none" / "secrets.env"), {"TOKEN": "v"})
    assert result["failed"] is True
    assert "does not exist" in result["msg"]
