"""Unit tests of the LXC property-string parser, comparison and change planning."""

from __future__ import annotations

import contextlib
import random
import string

import pytest
from ansible_collections.retail.edge.plugins.module_utils._pve_lxc_config import (
    MP_FORMAT,
    NET_FORMAT,
    ConfigError,
    Volume,
    config_key,
    format_size,
    parse_bool,
    parse_config,
    parse_size,
    plan_update,
    predict_config,
    predict_pending,
    root_only_reasons,
)
from hypothesis import given, settings
from hypothesis import strategies as st

STORED = {
    "hostname": "pos-cache",
    "memory": 512,
    "swap": 512,
    "cores": 1,
    "rootfs": "local-lvm:vm-101-disk-0,size=8G",
    "net0": "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:00:01,ip=dhcp,type=veth",
    "features": "keyctl=1,nesting=1",
    "tags": "edge;web",
    "onboot": 1,
    "digest": "0123456789abcdef",
}


def parse(name, value):
    return config_key(name).parse(value, name)


# --- scalar parsing ----------------------------------------------------------------------


@pytest.mark.parametrize("text", ["1", "true", "TRUE", "yes", "on", " On ", True, 1])
def test_parse_bool_true_spellings(text):
    assert parse_bool(text) is True


@pytest.mark.parametrize("text", ["0", "false", "no", "OFF", False, 0])
def test_parse_bool_false_spellings(text):
    assert parse_bool(text) is False


@pytest.mark.parametrize("text", ["2", "maybe", "", None, 1.5])
def test_parse_bool_rejects_other_values(text):
    with pytest.raises(ValueError, match="not a boolean"):
        parse_bool(text)


@pytest.mark.parametrize(
    ("left", "right"),
    [("8G", "8192M"), ("1T", "1024G"), ("512M", "524288K"), ("0.5G", "512M"), ("8GB", "8G"), ("8g", "8G")],
)
def test_parse_size_equal_meanings(left, right):
    assert parse_size(left) == parse_size(right)


def test_parse_size_requires_unit_in_declarations():
    with pytest.raises(ValueError, match="has no unit"):
        parse_size("8")
    assert parse_size("8", require_unit=False) == 8


@pytest.mark.parametrize("text", ["8X", "G8", "-1G", "8 G", ""])
def test_parse_size_rejects_garbage(text):
    with pytest.raises(ValueError, match="not a size"):
        parse_size(text)


@pytest.mark.parametrize(
    ("num_bytes", "text"),
    [(8 * 1024**3, "8G"), (1536 * 1024**2, "1536M"), (1024**4, "1T"), (1000, "1000"), (4096, "4K")],
)
def test_format_size_largest_exact_unit(num_bytes, text):
    assert format_size(num_bytes) == text


# --- property strings --------------------------------------------------------------------


def test_features_order_does_not_matter():
    key = config_key("features")
    assert key.same(key.parse("nesting=1,keyctl=1", "f"), key.parse("keyctl=1,nesting=1", "f"))


def test_features_dropped_flag_differs():
    key = config_key("features")
    assert not key.same(key.parse("nesting=1", "f"), key.parse("keyctl=1,nesting=1", "f"))


def test_features_default_zero_equals_absent():
    key = config_key("features")
    assert key.same(key.parse({"nesting": True, "keyctl": False}, "f"), key.parse("nesting=1", "f"))


def test_features_dict_and_string_agree():
    key = config_key("features")
    assert key.parse({"nesting": True, "mount": ["nfs", "cifs"]}, "f") == key.parse("mount=cifs;nfs,nesting=yes", "f")


def test_net_hwaddr_filled_by_pve_is_ignored():
    key = config_key("net0")
    declared = key.parse("name=eth0,bridge=vmbr0,ip=dhcp", "net0")
    stored = key.parse(STORED["net0"], "net0", strict=False)
    assert key.same(declared, stored)


def test_net_declared_hwaddr_is_compared_case_insensitively():
    key = config_key("net0")
    stored = key.parse(STORED["net0"], "net0", strict=False)
    assert key.same(key.parse("name=eth0,bridge=vmbr0,ip=dhcp,hwaddr=bc:24:11:00:00:01", "n"), stored)
    assert not key.same(key.parse("name=eth0,bridge=vmbr0,ip=dhcp,hwaddr=BC:24:11:00:00:02", "n"), stored)


def test_net_dict_accepts_underscore_spelling():
    parsed = config_key("net0").parse({"name": "eth0", "host_managed": True}, "net0")
    assert parsed["host-managed"] is True


def test_net_unknown_key_names_key_and_form():
    with pytest.raises(ConfigError) as error:
        config_key("net0").parse("name=eth0,brige=vmbr0", "netif.net0")
    message = str(error.value)
    assert "netif.net0" in message
    assert "'brige'" in message
    assert "did you mean 'bridge'" in message
    assert "name=<string> [,bridge=<bridge>]" in message


def test_net_missing_name_is_reported():
    with pytest.raises(ConfigError, match="missing required key 'name'"):
        config_key("net0").parse("bridge=vmbr0", "netif.net0")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("name=eth0,ip=198.51.100.7", "IPv4 address with prefix"),
        ("name=eth0,ip=2001:db8::1/64", "IPv4 address with prefix"),
        ("name=eth0,ip6=198.51.100.7/24", "IPv6 address with prefix"),
        ("name=eth0,gw=300.1.1.1", "not an IPv4 address"),
        ("name=eth0,tag=5000", "above the maximum 4094"),
        ("name=eth0,mtu=10", "below the minimum 64"),
        ("name=eth0,hwaddr=01:00:00:00:00:00", "multicast"),
        ("name=eth0,firewall=maybe", "not a boolean"),
        ("name=eth0,type=macvlan", "not one of veth"),
        ("name=eth0,eth1", "not of the form key=value"),
        ("name=eth0,name=eth1", "given twice"),
    ],
)
def test_net_invalid_values(text, fragment):
    with pytest.raises(ConfigError, match=fragment):
        config_key("net0").parse(text, "netif.net0")


def test_tags_order_and_case_do_not_matter():
    key = config_key("tags")
    assert key.same(key.parse(["web", "Edge"], "tags"), key.parse("edge;web", "tags", strict=False))


def test_tags_reject_invalid_characters():
    with pytest.raises(ConfigError, match="tag 'bad tag!'"):
        config_key("tags").parse(["bad tag!"], "tags")


def test_startup_default_key_and_order():
    key = config_key("startup")
    assert key.same(key.parse("2,up=30", "s"), key.parse("up=30,order=2", "s"))
    assert key.format(key.parse("up=30,order=2", "s")) == "2,up=30"


def test_dev_path_must_be_under_dev():
    with pytest.raises(ConfigError, match="device path under /dev/"):
        config_key("dev0").parse("/etc/shadow", "devices.dev0")


def test_dev_mode_must_be_octal():
    with pytest.raises(ConfigError, match="does not match"):
        config_key("dev0").parse("/dev/ttyUSB0,mode=777", "devices.dev0")


def test_description_trailing_newline_ignored():
    key = config_key("description")
    assert key.same(key.parse("store 42", "d"), key.parse("store 42\n", "d", strict=False))


def test_nameserver_order_matters():
    key = config_key("nameserver")
    assert not key.same(key.parse(["198.51.100.1", "198.51.100.2"], "n"), key.parse("198.51.100.2 198.51.100.1", "n"))


# --- volumes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "storage"),
    [
        ("local-lvm:8", "alloc", "local-lvm"),
        ("local-lvm:0.5", "alloc", "local-lvm"),
        ("local-lvm:vm-101-disk-0", "volid", "local-lvm"),
        ("/srv/share", "path", None),
        ("/dev/sdb1", "path", None),
    ],
)
def test_volume_kinds(text, kind, storage):
    volume = Volume.parse(text)
    assert volume.kind == kind
    assert volume.storage == storage


def test_volume_alloc_size_conflicts_with_size_key():
    with pytest.raises(ConfigError, match="give the size once"):
        parse("mp0", "local-lvm:4,mp=/srv,size=8G")


def test_volume_alloc_sets_size():
    assert parse("rootfs", "local-lvm:8")["size"] == parse_size("8G")


def test_volume_format_alloc_omits_size():
    assert config_key("mp0").format(parse("mp0", "local-lvm:4,mp=/srv")) == "local-lvm:4,mp=/srv"


def test_volume_garbage_rejected():
    with pytest.raises(ConfigError, match="is not a volume"):
        parse("mp0", "not a volume,mp=/srv")


# --- planning ----------------------------------------------------------------------------


def test_plan_no_change_for_same_meaning():
    desired = {
        "hostname": parse("hostname", "pos-cache"),
        "rootfs": parse("rootfs", "local-lvm:8"),
        "net0": parse("net0", "bridge=vmbr0,name=eth0,ip=dhcp"),
        "features": parse("features", "nesting=true,keyctl=yes"),
        "tags": parse("tags", ["web", "Edge"]),
        "onboot": parse("onboot", True),
        "memory": parse("memory", 512),
    }
    plan = plan_update(desired, STORED)
    assert plan.empty, plan


def test_plan_memory_and_new_mount_point():
    desired = {"memory": parse("memory", 1024), "mp0": parse("mp0", {"volume": "local-lvm:4", "mp": "/srv"})}
    plan = plan_update(desired, STORED)
    assert plan.set == {"memory": "1024", "mp0": "local-lvm:4,mp=/srv"}
    assert plan.added == ["mp0"]
    assert plan.changed_keys == ["memory", "mp0"]


def test_plan_grow_rootfs_resizes():
    plan = plan_update({"rootfs": {"size": parse_size("10G")}}, STORED)
    assert [(item.disk, item.size_text) for item in plan.resize] == [("rootfs", "10G")]
    assert plan.set == {}


def test_plan_shrink_rootfs_is_error():
    plan = plan_update({"rootfs": {"size": parse_size("6G")}}, STORED)
    assert plan.resize == []
    assert len(plan.errors) == 1
    assert "cannot shrink from 8G to 6G" in plan.errors[0]


def test_plan_rootfs_on_other_storage_is_error():
    plan = plan_update({"rootfs": parse("rootfs", "ceph-rbd:8")}, STORED)
    assert "neither moves nor replaces volumes" in plan.errors[0]


def test_plan_rootfs_option_change_keeps_volume_and_size():
    plan = plan_update({"rootfs": parse("rootfs", "local-lvm:8,mountoptions=noatime")}, STORED)
    assert plan.set == {"rootfs": "local-lvm:vm-101-disk-0,mountoptions=noatime,size=8G"}


def test_plan_bind_mount_may_change_path():
    stored = {**STORED, "mp0": "/srv/a,mp=/data"}
    plan = plan_update({"mp0": parse("mp0", "/srv/b,mp=/data")}, stored)
    assert plan.set == {"mp0": "/srv/b,mp=/data"}


def test_plan_empty_features_deletes_key():
    plan = plan_update({"features": parse("features", "")}, STORED)
    assert plan.delete == ["features"]


def test_plan_undeclared_keys_listed_not_deleted():
    stored = {**STORED, "net1": "name=eth1,bridge=vmbr1", "description": "old\n"}
    plan = plan_update({"memory": 512}, stored)
    assert plan.undeclared == ["cores", "description", "features", "net0", "net1", "onboot", "tags"]
    assert plan.delete == []


def test_plan_delete_undeclared_removes_only_deletable_keys():
    stored = {**STORED, "unused0": "local-lvm:vm-101-disk-9", "lxc.cgroup2.devices.allow": "c 10:200 rwm"}
    plan = plan_update({"net0": parse("net0", "name=eth0,bridge=vmbr0,ip=dhcp")}, stored, delete_undeclared=True)
    assert plan.delete == ["cores", "features", "onboot", "tags"]


def test_plan_unprivileged_change_is_error():
    plan = plan_update({"unprivileged": True}, {**STORED, "unprivileged": 0})
    assert "cannot change it after creation" in plan.errors[0]


def test_plan_unprivileged_default_matches_absent():
    assert plan_update({"unprivileged": False}, STORED).errors == []


def test_predict_config_applies_set_delete_resize():
    desired = {
        "memory": 2048,
        "rootfs": {"size": parse_size("16G")},
        "features": parse("features", ""),
    }
    plan = plan_update(desired, STORED)
    after = predict_config(STORED, plan)
    assert after["memory"] == 2048
    assert "features" not in after
    assert after["rootfs"] == "local-lvm:vm-101-disk-0,size=16G"
    assert "digest" not in after


def test_predict_pending_for_running_container():
    desired = {
        "memory": 2048,
        "features": parse("features", "nesting=1"),
        "mp0": parse("mp0", "local-lvm:4,mp=/srv"),
    }
    plan = plan_update(desired, STORED)
    assert predict_pending(plan) == ["features"]


def test_root_only_dev_and_bind_mount_and_features():
    changes = {
        "dev0": parse("dev0", "/dev/ttyUSB0"),
        "mp1": parse("mp1", "/srv/share,mp=/share"),
        "mp2": parse("mp2", "local-lvm:4,mp=/data"),
        "features": parse("features", "nesting=1,fuse=1"),
    }
    reasons = root_only_reasons(changes, [], parse_config(STORED))
    assert any(reason.startswith("dev0") for reason in reasons)
    assert any(reason.startswith("mp1") for reason in reasons)
    assert not any(reason.startswith("mp2") for reason in reasons)
    assert any("keyctl" in reason and "fuse" in reason for reason in reasons)


def test_root_only_nesting_alone_is_open():
    stored = {"features": "nesting=0"}
    assert root_only_reasons({"features": parse("features", "nesting=1")}, [], parse_config(stored)) == []


# --- property-based tests ----------------------------------------------------------------

_names = st.from_regex(r"[a-z][a-z0-9_.-]{0,14}", fullmatch=True)
_ipv4 = st.tuples(*[st.integers(0, 255)] * 4, st.integers(1, 32)).map(lambda t: f"{t[0]}.{t[1]}.{t[2]}.{t[3]}/{t[4]}")
_mac = st.lists(st.integers(0, 255), min_size=6, max_size=6).map(
    lambda octets: ":".join(f"{o:02X}" for o in [octets[0] & 0xFE, *octets[1:]])
)
_net = st.fixed_dictionaries(
    {"name": _names},
    optional={
        "bridge": _names,
        "firewall": st.booleans(),
        "hwaddr": _mac,
        "ip": st.one_of(st.just("dhcp"), st.just("manual"), _ipv4),
        "mtu": st.integers(64, 65535),
        "tag": st.integers(1, 4094),
        "trunks": st.lists(st.integers(1, 4094).map(str), min_size=1, max_size=4),
        "rate": st.integers(0, 10000),
        "link_down": st.booleans(),
    },
)
_bool_text = st.sampled_from(["1", "0", "true", "false", "yes", "no", "on", "off", "TRUE", "Off"])


def _to_text(value):
    if isinstance(value, bool):
        return random.choice(["1", "true", "yes", "on"] if value else ["0", "false", "no", "off"])
    if isinstance(value, list):
        return ";".join(value)
    return str(value)


@settings(max_examples=200, deadline=None)
@given(net=_net, seed=st.integers(0, 2**32 - 1))
def test_fuzz_net_string_and_dict_same_meaning(net, seed):
    random.seed(seed)
    parts = [f"{key}={_to_text(value)}" for key, value in net.items()]
    random.shuffle(parts)
    from_text = NET_FORMAT.parse(",".join(parts), "net0")
    from_dict = NET_FORMAT.parse(net, "net0")
    assert NET_FORMAT.same(from_text, from_dict)
    assert NET_FORMAT.same(from_dict, from_text)


@settings(max_examples=200, deadline=None)
@given(net=_net)
def test_fuzz_net_format_round_trip(net):
    parsed = NET_FORMAT.parse(net, "net0")
    again = NET_FORMAT.parse(NET_FORMAT.format(parsed), "net0")
    assert again == parsed


@settings(max_examples=200, deadline=None)
@given(
    flags=st.dictionaries(st.sampled_from(["nesting", "keyctl", "fuse", "mknod", "force_rw_sys"]), _bool_text),
    seed=st.integers(0, 2**32 - 1),
)
def test_fuzz_features_order_and_spelling(flags, seed):
    random.seed(seed)
    parts = [f"{key}={value}" for key, value in flags.items()]
    shuffled = parts[:]
    random.shuffle(shuffled)
    key = config_key("features")
    assert key.same(key.parse(",".join(parts), "f"), key.parse(",".join(shuffled), "f"))
    canonical = key.format(key.parse(",".join(parts), "f"))
    assert key.same(key.parse(canonical, "f"), key.parse(",".join(parts), "f"))


@settings(max_examples=300, deadline=None)
@given(number=st.integers(1, 4096), unit=st.sampled_from(["K", "M", "G"]))
def test_fuzz_size_units_agree(number, unit):
    bigger = {"K": "M", "M": "G", "G": "T"}[unit]
    scaled = parse_size(f"{number * 1024}{unit}")
    assert scaled == parse_size(f"{number}{bigger}")
    assert parse_size(format_size(scaled)) == scaled


@settings(max_examples=500, deadline=None)
@given(text=st.text(alphabet=string.printable, max_size=60))
def test_fuzz_garbage_raises_only_config_error(text):
    for name in ("net0", "mp0", "rootfs", "features", "dev0", "startup", "tags"):
        with contextlib.suppress(ConfigError):
            config_key(name).parse(text, name)


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=string.printable, max_size=60))
def test_fuzz_lenient_parse_never_raises_on_stored_values(text):
    parse_config({"net0": text, "mp0": text, "rootfs": text, "features": text, "tags": text})


_declaration = st.fixed_dictionaries(
    {
        "memory": st.integers(16, 65536),
        "cores": st.integers(1, 64),
        "rootfs": st.integers(8, 72).map(lambda gib: f"{gib}G"),
        "features": st.dictionaries(st.sampled_from(["nesting", "keyctl", "fuse"]), st.booleans()),
        "tags": st.lists(st.from_regex(r"[a-zA-Z0-9_][a-zA-Z0-9_.+-]{0,8}", fullmatch=True), max_size=4),
        "net0": _net,
    }
)


@settings(max_examples=150, deadline=None)
@given(declaration=_declaration, drop=st.booleans())
def test_fuzz_plan_is_idempotent(declaration, drop):
    desired = {name: parse(name, value) for name, value in declaration.items() if name != "rootfs"}
    desired["rootfs"] = {"size": parse_size(declaration["rootfs"])}
    first = plan_update(desired, STORED, delete_undeclared=drop)
    assert first.errors == []
    after = predict_config(STORED, first)
    second = plan_update(desired, after, delete_undeclared=drop)
    assert second.empty, (first, second)


def test_mp_format_requires_mp_path():
    with pytest.raises(ConfigError, match="missing required key 'mp'"):
        MP_FORMAT.parse("local-lvm:4", "mounts.mp0")
