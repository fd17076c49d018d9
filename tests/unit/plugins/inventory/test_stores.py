"""Unit tests of the retail.edge.stores inventory plugin's registry parsing."""

from __future__ import annotations

import ipaddress

import pytest
from ansible.errors import AnsibleParserError
from ansible_collections.retail.edge.plugins.inventory.stores import (
    address_in,
    csv_row_to_store,
    group_name,
    merge_workloads,
    validate_store,
)


def test_csv_row_nodes_and_gpu():
    row = {"id": "s1", "nodes": "a; b;", "gpu": "TRUE", "region": " eu "}
    parsed = csv_row_to_store(row)
    assert parsed["nodes"] == ["a", "b"]
    assert parsed["gpu"] is True
    assert parsed["region"] == "eu"


def test_group_name_replaces_dash():
    assert group_name("region", "eu-west") == "region_eu_west"


def test_address_in_subnet():
    network = ipaddress.IPv4Network("10.0.0.0/24")
    assert address_in(network, 21, "store") == "10.0.0.21"
    with pytest.raises(AnsibleParserError, match="does not fit"):
        address_in(network, 255, "store")


def test_merge_workloads_override_and_new():
    merged = merge_workloads(
        {"pos_cache": {"memory": 2048}, "labels": {"vmid": 300, "offset": 40, "cores": 1, "memory": 128, "disk": 2}}
    )
    assert merged["pos_cache"]["memory"] == 2048
    assert merged["pos_cache"]["vmid"] == 204
    assert merged["labels"]["gpu"] is False


def test_merge_workloads_rejects_low_vmid():
    with pytest.raises(AnsibleParserError, match="vmid 99 is out of range"):
        merge_workloads({"pos_cache": {"vmid": 99}})


def test_validate_store_nodes_list():
    entry = {"id": "s1", "region": "eu", "format": "f", "wave": "w", "subnet": "10.0.0.0/24", "nodes": "pve1"}
    with pytest.raises(AnsibleParserError, match="nodes must be a non-empty list"):
        validate_store(entry, "store #1")
