"""Unit tests of pve_ceph_pool: validation, comparison by meaning and the plan it applies."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from ansible_collections.retail.edge.plugins.module_utils._pve import PveError
from ansible_collections.retail.edge.plugins.modules.pve_ceph_pool import (
    PoolManager,
    declared_settings,
    erasure_coding_string,
    parse_target_size,
    pool_view,
    validate,
)

DEFAULTS: dict[str, Any] = {
    "name": "ct-volumes",
    "state": "present",
    "node": None,
    "size": None,
    "min_size": None,
    "pg_num": None,
    "pin_pg_num": False,
    "pg_num_min": None,
    "pg_autoscale_mode": None,
    "application": None,
    "crush_rule": None,
    "target_size": None,
    "target_size_ratio": None,
    "erasure_coding": None,
    "add_storages": None,
    "force": False,
    "remove_storages": False,
    "remove_ecprofile": True,
    "timeout": 30,
}


class FakePve:
    """The pool list of one node, changed by PUT/POST/DELETE the way Ceph 16 changes it."""

    def __init__(self, pools: list[dict[str, Any]] | None = None) -> None:
        self.pools = {pool["pool_name"]: dict(pool) for pool in pools or []}
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def get(self, path: str, **_params: Any) -> Any:
        if path == "nodes":
            return [{"node": "pve2", "status": "online"}, {"node": "pve1", "status": "online"}]
        assert path.endswith("/ceph/pool")
        return [dict(pool) for pool in self.pools.values()]

    def run_task(self, method: str, path: str, _wait: float, params: dict[str, Any] | None = None) -> str:
        params = dict(params or {})
        self.calls.append((method, path, params))
        name = path.rsplit("/", 1)[1]
        if method == "DELETE":
            del self.pools[name]
        elif method == "POST":
            self.pools[params["name"]] = entry(params["name"], size=params.get("size", 3), min_size=2)
        else:
            pool = self.pools[name]
            if "size" in params:
                pool["size"] = params["size"]
                pool["min_size"] = params["size"] - params["size"] // 2
            for key in ("min_size", "pg_num", "pg_autoscale_mode", "target_size_ratio"):
                if key in params:
                    pool[key] = params[key]
            if "target_size" in params:
                pool["target_size"] = int(params["target_size"])
        return f"UPID:pve1:00000001:00000001:00000001:cephsetpool:{name}:root@pam:"


def entry(name: str, **values: Any) -> dict[str, Any]:
    pool = {
        "pool_name": name,
        "pool": 1,
        "type": "replicated",
        "size": 3,
        "min_size": 2,
        "pg_num": 32,
        "pg_autoscale_mode": "warn",
        "crush_rule": 0,
        "crush_rule_name": "replicated_rule",
        "application_metadata": {"rbd": {}},
    }
    pool.update(values)
    return pool


def manager(pve: FakePve, check_mode: bool = False, **params: Any) -> PoolManager:
    module = SimpleNamespace(params={**DEFAULTS, **params}, check_mode=check_mode, _diff=True, warnings=[])
    module.warn = module.warnings.append
    return PoolManager(module, pve)


def test_validate_rejects_slash_in_name():
    errors = validate({**DEFAULTS, "name": "a/b"})
    assert len(errors) == 1
    assert "'a/b'" in errors[0]
    assert "must not contain ':', '/'" in errors[0]


def test_validate_size_out_of_range():
    errors = validate({**DEFAULTS, "size": 9})
    assert errors == ["size 9 is out of range: PVE accepts 1 to 7"]


def test_validate_min_size_above_size():
    errors = validate({**DEFAULTS, "size": 2, "min_size": 3})
    assert errors == ["min_size 3 is larger than size 2: use at most 2"]


def test_validate_target_size_form():
    errors = validate({**DEFAULTS, "target_size": "10GB"})
    assert len(errors) == 1
    assert "'10GB'" in errors[0]
    assert "such as 10G" in errors[0]


def test_validate_erasure_chunks():
    errors = validate({**DEFAULTS, "erasure_coding": {"k": 1, "m": 0}})
    assert len(errors) == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [("10G", 10 * 1024**3), ("1.5T", int(1.5 * 1024**4)), ("512", 512), ("4K", 4096), ("0", 0)],
)
def test_parse_target_size_units(text, expected):
    assert parse_target_size(text) == expected


def test_declared_settings_ratio_is_float():
    settings = declared_settings({**DEFAULTS, "target_size_ratio": 1, "target_size": "1M"})
    assert settings == {"target_size_ratio": 1.0, "target_size": 1024**2}
    assert isinstance(settings["target_size_ratio"], float)


def test_pool_view_unset_hints_read_zero():
    view = pool_view(entry("p"))
    assert view["target_size"] == 0
    assert view["target_size_ratio"] == 0.0
    assert view["application"] == "rbd"
    assert view["crush_rule"] == "replicated_rule"


def test_erasure_coding_string():
    assert erasure_coding_string({"k": 2, "m": 1, "failure_domain": "osd", "device_class": None, "profile": None}) == (
        "k=2,m=1,failure-domain=osd"
    )


def test_create_predicts_pve_defaults_in_check_mode():
    pve = FakePve()
    result = manager(pve, check_mode=True, pg_num=16).run()
    assert result["changed"] is True
    assert pve.calls == []
    assert result["diff"]["after"] == {
        "name": "ct-volumes",
        "size": 3,
        "min_size": 2,
        "pg_num": 16,
        "application": "rbd",
        "pg_autoscale_mode": "warn",
    }
    assert result["node"] == "pve1"


def test_target_size_compared_as_bytes():
    pve = FakePve([entry("ct-volumes", target_size=10 * 1024**3, target_size_ratio=0.5)])
    result = manager(pve, target_size="10G", target_size_ratio=0.5).run()
    assert result["changed"] is False
    assert pve.calls == []


def test_size_change_keeps_min_size():
    pve = FakePve([entry("ct-volumes", size=3, min_size=2)])
    result = manager(pve, size=5).run()
    assert result["changed_keys"] == ["size"]
    assert pve.pools["ct-volumes"]["min_size"] == 2
    assert [call[2] for call in pve.calls] == [{"size": 5}, {"min_size": 2}]


def test_size_and_min_size_both_reported():
    pve = FakePve([entry("ct-volumes", size=3, min_size=2)])
    result = manager(pve, size=2, min_size=1).run()
    assert result["changed_keys"] == ["min_size", "size"]
    assert result["diff"]["before"] == {"name": "ct-volumes", "size": 3, "min_size": 2}
    assert result["diff"]["after"] == {"name": "ct-volumes", "size": 2, "min_size": 1}


def test_pg_num_ignored_while_autoscale_on():
    pve = FakePve([entry("ct-volumes", pg_autoscale_mode="on", pg_num=32)])
    mgr = manager(pve, pg_num=64)
    result = mgr.run()
    assert result["changed"] is False
    assert pve.calls == []
    assert "pin_pg_num" in mgr.module.warnings[0]


def test_pg_num_pinned_while_autoscale_on():
    pve = FakePve([entry("ct-volumes", pg_autoscale_mode="on", pg_num=32)])
    result = manager(pve, pg_num=64, pin_pg_num=True).run()
    assert result["changed_keys"] == ["pg_num"]


def test_application_change_fails():
    pve = FakePve([entry("ct-volumes", application_metadata={"cephfs": {}})])
    with pytest.raises(PveError, match="already has application 'cephfs'"):
        manager(pve, application="rbd").run()
    assert pve.calls == []


def test_erasure_coding_on_replicated_fails():
    pve = FakePve([entry("ct-volumes")])
    with pytest.raises(PveError, match="cannot convert it to erasure coding"):
        manager(pve, erasure_coding={"k": 2, "m": 1, "failure_domain": "host"}).run()


def test_erasure_pair_split_by_pool():
    pve = FakePve(
        [
            entry("arch-data", type="erasure", size=3, min_size=2, pg_autoscale_mode="warn"),
            entry("arch-metadata", size=3, min_size=2),
        ]
    )
    result = manager(pve, name="arch", size=2, min_size=1, pg_autoscale_mode="off").run()
    assert result["changed_keys"] == ["min_size", "pg_autoscale_mode", "size"]
    assert [(call[1].rsplit("/", 1)[1], call[2]) for call in pve.calls] == [
        ("arch-data", {"pg_autoscale_mode": "off"}),
        ("arch-metadata", {"size": 2, "min_size": 1}),
    ]
    assert result["metadata_pool"]["pool_name"] == "arch-metadata"


def test_absent_twice():
    pve = FakePve([entry("ct-volumes")])
    first = manager(pve, state="absent").run()
    second = manager(pve, state="absent").run()
    assert first["changed"] is True
    assert first["diff"]["after"] == {}
    assert second["changed"] is False
    assert second["changed_keys"] == []


def test_pg_num_compared_with_target_while_merging():
    merging = entry("ct-volumes", pg_num=31, autoscale_status={"pg_num_target": 16}, pg_autoscale_mode="off")
    pve = FakePve([merging])
    result = manager(pve, pg_num=16).run()
    assert result["changed"] is False
    assert result["diff"]["after"]["pg_num"] == 16
