"""pve_lxc run in-process with fuzzed arguments against the PVE API double.

Every run must end through exit_json or fail_json; an exception that escapes the module would reach the user
as a traceback instead of a message. A failure must carry a message. Arguments are drawn for the options that
take free-form values (sizes, property strings, numbers given as text) next to valid ones, so most examples
get past argument_spec and into the module's own validation and the API calls it plans.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lab.pve.testing import PveDouble
from tests.support import COLLECTIONS_PATH, ensure_collection_link

ensure_collection_link()
sys.path.insert(0, str(COLLECTIONS_PATH))

from ansible.module_utils.testing import patch_module_args  # noqa: E402
from ansible_collections.retail.edge.plugins.modules import pve_lxc  # noqa: E402

OSTEMPLATE = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"


def is_finite_or_not_a_number(value: str) -> bool:
    """Return False for text that float() reads as inf or nan.

    Such values are left out here; the explicit cases at the end of test_fuzz_pve_lxc_config.py check
    that the parser rejects them.
    """
    try:
        return math.isfinite(float(value))
    except ValueError:
        return True


text = st.one_of(
    st.sampled_from(["8G", "0", "-1", "1.5", "512M", "yes", "", "local-lvm:8", "vmbr0", "name=eth0,bridge=vmbr0"]),
    st.text(alphabet=st.characters(codec="ascii", exclude_categories=("Cc",)), max_size=24),
).filter(is_finite_or_not_a_number)
number_text = st.one_of(st.integers(-(2**40), 2**40), st.floats(allow_nan=False, allow_infinity=False), text)
options = st.fixed_dictionaries(
    {},
    optional={
        "hostname": text,
        "state": st.sampled_from(["present", "started", "stopped", "absent"]),
        "storage": st.sampled_from(["local-lvm", "local", "nope"]),
        "disk_size": text,
        "rootfs": st.one_of(text, st.dictionaries(st.sampled_from(["storage", "size", "quota"]), text, max_size=2)),
        "cores": number_text,
        "cpulimit": number_text,
        "memory": number_text,
        "swap": number_text,
        "netif": st.dictionaries(st.sampled_from(["net0", "net1", "net99", "eth0"]), text, max_size=2),
        "mounts": st.dictionaries(st.sampled_from(["mp0", "mp1", "mp999"]), text, max_size=2),
        "features": st.one_of(text, st.lists(text, max_size=2)),
        "tags": st.lists(text, max_size=3),
        "startup": st.one_of(text, st.dictionaries(st.sampled_from(["order", "up", "down"]), number_text, max_size=2)),
        "nameserver": st.lists(text, max_size=2),
        "timezone": text,
        "description": text,
    },
)


def run_module(args: dict[str, Any]) -> dict[str, Any]:
    """Run pve_lxc.main() with args and return the JSON it printed; let any other exception propagate."""
    output = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(output), pytest.raises(SystemExit):
        pve_lxc.main()
    return json.loads(output.getvalue())


@pytest.fixture(scope="module")
def connection(pve_double_module: PveDouble) -> dict[str, Any]:
    return pve_double_module.module_defaults()


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(declared=options, vmid=st.integers(900, 905), check_mode=st.booleans())
def test_pve_lxc_fuzzed_arguments(
    connection: dict[str, Any], declared: dict[str, Any], vmid: int, check_mode: bool
) -> None:
    args = {**connection, "vmid": vmid, "node": "pve1", "ostemplate": OSTEMPLATE, **declared}
    args["_ansible_check_mode"] = check_mode
    result = run_module(args)
    if result.get("failed"):
        assert result.get("msg"), result
