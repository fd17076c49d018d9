"""Unit tests of the drift_report callback's helpers."""

from __future__ import annotations

from ansible.inventory.group import Group
from ansible.inventory.host import Host
from ansible_collections.retail.edge.plugins.callback.drift_report import (
    CallbackModule,
    categorize,
    changed_keys,
    clip,
    unified_diff,
)


def test_category_from_module():
    assert categorize("retail.edge.pve_lxc") == "container"
    assert categorize("retail.edge.pve_ceph_pool") == "pool"
    assert categorize("ansible.builtin.template") == "config"
    assert categorize("systemd_service") == "service"
    assert categorize("ansible.builtin.command") == "other"


def test_changed_keys_precedence():
    diff = [{"before": {"memory": 1024, "cores": 2}, "after": {"memory": 512, "cores": 2}}]
    assert changed_keys({"changed_keys": ["tags", "memory"]}, diff) == ["memory", "tags"]
    assert changed_keys({}, diff) == ["memory"]
    assert changed_keys({"path": "/etc/x"}, []) == ["/etc/x"]
    assert changed_keys({}, [{"after_header": "/etc/nginx/nginx.conf", "before": "a", "after": "b"}]) == [
        "/etc/nginx/nginx.conf"
    ]
    assert changed_keys({}, []) == []


def test_unified_diff_of_dicts():
    text = unified_diff(
        [
            {
                "before": {"memory": 1024, "cores": 2},
                "after": {"memory": 512, "cores": 2},
                "before_header": "CT 204 config",
                "after_header": "CT 204 config",
            }
        ]
    )
    assert text.startswith("--- CT 204 config\n+++ CT 204 config\n")
    assert "-memory: 1024\n+memory: 512\n" in text
    assert " cores: 2\n" in text


def test_long_diffs_are_clipped():
    assert clip("x" * 30, 10) == "x" * 10 + "\n[... 20 more characters left out of the report]"
    assert clip({"a": 1}, 1) == {"a": 1}


def test_store_of_host_from_vars_or_group():
    from_vars = Host("s001-pos-cache")
    from_vars.set_variable("retail_edge_store", {"id": "s001"})
    from_group = Host("s002-pve1")
    from_group.add_group(Group("store_s002_nodes"))
    assert CallbackModule._store_of(from_vars) == "s001"
    assert CallbackModule._store_of(from_group) == "s002"
    assert CallbackModule._store_of(Host("localhost")) is None
