"""Authentication of the PVE double: tickets, CSRF tokens, API tokens and PVE's root@pam-only options."""

from __future__ import annotations

import pytest
import requests

from lab.pve.testing import PveDouble

TEMPLATE = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
ROOT_TOKEN = "root@pam!automation"
OPS_TOKEN = "ops@pve!ci"


@pytest.fixture
def pve(pve_double_module: PveDouble) -> PveDouble:
    pve_double_module.reset()
    return pve_double_module


def call(
    pve: PveDouble, method: str, path: str, *, headers: dict | None = None, cookies: dict | None = None, **params
) -> requests.Response:
    url = f"{pve.url}{path}"
    if method == "GET":
        return requests.get(url, params=params, headers=headers, cookies=cookies, verify=str(pve.ca_file), timeout=30)
    return requests.request(
        method, url, data=params, headers=headers, cookies=cookies, verify=str(pve.ca_file), timeout=30
    )


def login(pve: PveDouble, username: str, password: str, **extra) -> requests.Response:
    return call(pve, "POST", "/access/ticket", username=username, password=password, **extra)


def ticket_auth(pve: PveDouble, username: str, password: str) -> tuple[dict, dict]:
    data = login(pve, username, password).json()["data"]
    return {"PVEAuthCookie": data["ticket"]}, {"CSRFPreventionToken": data["CSRFPreventionToken"]}


def token_header(pve: PveDouble, token_id: str) -> dict:
    return {"Authorization": f"PVEAPIToken={token_id}={pve.tokens[token_id]}"}


def create_ct(pve: PveDouble, vmid: int = 100, **params) -> None:
    upid = pve.api("POST", "/nodes/pve1/lxc", vmid=vmid, ostemplate=TEMPLATE, rootfs="local-lvm:4", **params)
    assert pve.wait_task(upid)["exitstatus"] == "OK"


def test_login_returns_ticket_and_csrf_token(pve):
    answer = login(pve, "root@pam", pve.root_password)
    assert answer.status_code == 200
    data = answer.json()["data"]
    assert data["username"] == "root@pam"
    assert data["ticket"].startswith("PVE:root@pam:")
    assert ":" in data["CSRFPreventionToken"]


def test_login_with_realm_parameter(pve):
    answer = login(pve, "ops", "lab-ops-password", realm="pve")
    assert answer.status_code == 200
    assert answer.json()["data"]["username"] == "ops@pve"


def test_login_wrong_password_is_401(pve):
    answer = login(pve, "root@pam", "wrong")
    assert answer.status_code == 401
    assert answer.reason == "authentication failure"
    assert answer.json()["data"] is None


def test_request_without_credentials_is_401(pve):
    answer = call(pve, "GET", "/nodes")
    assert answer.status_code == 401
    assert answer.reason == "No ticket"


def test_tampered_ticket_is_401(pve):
    cookies, _ = ticket_auth(pve, "root@pam", pve.root_password)
    forged = cookies["PVEAuthCookie"].replace("root@pam", "ops@pve")
    assert call(pve, "GET", "/nodes", cookies={"PVEAuthCookie": forged}).status_code == 401


def test_ticket_reads_without_csrf_token(pve):
    cookies, _ = ticket_auth(pve, "root@pam", pve.root_password)
    assert call(pve, "GET", "/nodes", cookies=cookies).status_code == 200


def test_ticket_write_without_csrf_token_is_401(pve):
    cookies, csrf = ticket_auth(pve, "root@pam", pve.root_password)
    answer = call(pve, "POST", "/nodes/pve1/lxc", cookies=cookies, vmid=100, ostemplate=TEMPLATE)
    assert answer.status_code == 401
    assert answer.reason == "Permission denied - invalid csrf token"
    wrong = {"CSRFPreventionToken": csrf["CSRFPreventionToken"][:-2] + "xx"}
    answer = call(pve, "POST", "/nodes/pve1/lxc", cookies=cookies, headers=wrong, vmid=100, ostemplate=TEMPLATE)
    assert answer.status_code == 401
    answer = call(pve, "POST", "/nodes/pve1/lxc", cookies=cookies, headers=csrf, vmid=100, ostemplate=TEMPLATE)
    assert answer.status_code == 200


def test_csrf_token_of_other_user_is_401(pve):
    cookies, _ = ticket_auth(pve, "root@pam", pve.root_password)
    _, ops_csrf = ticket_auth(pve, "ops@pve", "lab-ops-password")
    answer = call(pve, "PUT", "/nodes/pve1/lxc/100/config", cookies=cookies, headers=ops_csrf, memory=1024)
    assert answer.status_code == 401


def test_api_token_reads_and_writes_without_csrf(pve):
    headers = token_header(pve, ROOT_TOKEN)
    assert call(pve, "GET", "/nodes", headers=headers).status_code == 200
    answer = call(pve, "POST", "/nodes/pve1/lxc", headers=headers, vmid=100, ostemplate=TEMPLATE)
    assert answer.status_code == 200
    assert answer.json()["data"].endswith(f":vzcreate:100:{ROOT_TOKEN}:")


def test_api_token_wrong_secret_is_401(pve):
    answer = call(pve, "GET", "/nodes", headers={"Authorization": f"PVEAPIToken={ROOT_TOKEN}=not-the-secret"})
    assert answer.status_code == 401
    answer = call(pve, "GET", "/nodes", headers={"Authorization": "PVEAPIToken=root@pam=missing-token-id"})
    assert answer.status_code == 401


def test_root_ticket_may_set_root_only_options(pve):
    create_ct(pve)
    pve.api("PUT", "/nodes/pve1/lxc/100/config", dev0="/dev/null,mode=0666", mp0="/srv/data,mp=/data")
    pve.api("PUT", "/nodes/pve1/lxc/100/config", features="nesting=1,keyctl=1,fuse=1")
    conf = pve.api("GET", "/nodes/pve1/lxc/100/config")
    assert conf["dev0"] == "/dev/null,mode=0666"
    assert conf["mp0"] == "/srv/data,mp=/data"


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"dev0": "/dev/null"}, "configuring device passthrough is only allowed for root@pam"),
        ({"mp0": "/srv/data,mp=/data"}, "mount point type bind is only allowed for root@pam"),
        ({"mp1": "/dev/sdb1,mp=/disk"}, "mount point type device is only allowed for root@pam"),
        ({"features": "nesting=1,keyctl=1"}, "changing feature flags (except nesting) is only allowed for root@pam"),
        ({"hookscript": "local:snippets/hook.sh"}, "changing the hookscript is only allowed for root@pam"),
    ],
    ids=["dev", "bind-mount", "device-mount", "keyctl", "hookscript"],
)
@pytest.mark.parametrize("token_id", [ROOT_TOKEN, OPS_TOKEN])
def test_tokens_refused_root_only_options(pve, params, reason, token_id):
    create_ct(pve)
    answer = call(pve, "PUT", "/nodes/pve1/lxc/100/config", headers=token_header(pve, token_id), **params)
    assert answer.status_code == 403
    assert answer.reason == f"Permission check failed ({reason})"
    assert answer.json() == {"data": None, "message": f"Permission check failed ({reason})\n"}


def test_non_root_user_ticket_refused_device(pve):
    create_ct(pve)
    cookies, csrf = ticket_auth(pve, "ops@pve", "lab-ops-password")
    answer = call(pve, "PUT", "/nodes/pve1/lxc/100/config", cookies=cookies, headers=csrf, dev0="/dev/null")
    assert answer.status_code == 403


def test_token_may_toggle_nesting_only(pve):
    create_ct(pve)
    headers = token_header(pve, ROOT_TOKEN)
    assert call(pve, "PUT", "/nodes/pve1/lxc/100/config", headers=headers, features="nesting=1").status_code == 200
    assert call(pve, "PUT", "/nodes/pve1/lxc/100/config", headers=headers, delete="features").status_code == 200
    assert call(pve, "PUT", "/nodes/pve1/lxc/100/config", headers=headers, mp0="local-lvm:1,mp=/v").status_code == 200


def test_token_refused_features_on_privileged_container(pve):
    create_ct(pve, unprivileged=0)
    answer = call(pve, "PUT", "/nodes/pve1/lxc/100/config", headers=token_header(pve, ROOT_TOKEN), features="nesting=1")
    assert answer.status_code == 403
    assert "for privileged container is only allowed for root@pam" in answer.reason


def test_token_refused_device_on_create(pve):
    answer = call(
        pve,
        "POST",
        "/nodes/pve1/lxc",
        headers=token_header(pve, ROOT_TOKEN),
        vmid=100,
        ostemplate=TEMPLATE,
        dev0="/dev/null",
    )
    assert answer.status_code == 403
    assert pve.api("GET", "/nodes/pve1/lxc") == []
