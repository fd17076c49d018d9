"""The double through proxmoxer, the client library the collection's modules use, with TLS verified."""

from __future__ import annotations

import pytest
from proxmoxer import ProxmoxAPI
from proxmoxer.core import ResourceException

from lab.pve.testing import PveDouble

TEMPLATE = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"


@pytest.fixture
def pve(pve_double_module: PveDouble) -> PveDouble:
    pve_double_module.reset()
    return pve_double_module


def test_password_login_with_module_defaults(pve):
    options = pve.module_defaults()
    assert options["validate_certs"] is True
    api = ProxmoxAPI(
        options["api_host"],
        port=options["api_port"],
        user=options["api_user"],
        password=options["api_password"],
        verify_ssl=options["ca_path"],
    )
    upid = api.nodes("pve1").lxc.post(vmid=100, ostemplate=TEMPLATE, hostname="web1")
    assert pve.wait_task(upid)["exitstatus"] == "OK"
    assert api.nodes("pve1").lxc(100).config.get()["hostname"] == "web1"


def test_token_login(pve):
    token_id, secret = "root@pam!automation", pve.tokens["root@pam!automation"]
    user, _, name = token_id.partition("!")
    api = ProxmoxAPI(
        pve.host, port=pve.port, user=user, token_name=name, token_value=secret, verify_ssl=str(pve.ca_file)
    )
    assert [node["node"] for node in api.nodes.get()] == ["pve1", "pve2", "pve3"]


def test_errors_surface_in_proxmoxer(pve):
    api = ProxmoxAPI(pve.host, port=pve.port, user="root@pam", password=pve.root_password, verify_ssl=str(pve.ca_file))
    with pytest.raises(ResourceException) as error:
        api.nodes("pve1").lxc.post(vmid=99, ostemplate=TEMPLATE)
    assert error.value.status_code == 400
    assert error.value.errors == {"vmid": "value must have a minimum value of 100"}
