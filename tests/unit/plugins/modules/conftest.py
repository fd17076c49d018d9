"""An in-memory stand-in for the PVE API, small enough for module unit tests.

It models what pve_lxc relies on: cluster resources, container configs with pending changes
for running containers, volumes allocated from `STORAGE:GiB`, resize, power state and tasks.
The HTTPS double in lab/pve covers the wire protocol; the integration tests run against it.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args
from ansible_collections.retail.edge.plugins.module_utils import _pve
from proxmoxer import ResourceException

# Keys a running container takes at once; everything else waits for the next start.
HOTPLUG = {"memory", "swap", "cores", "cpulimit", "cpuunits", "hostname", "description", "onboot", "tags", "startup"}


class FakePve:
    def __init__(self) -> None:
        self.guests: dict[int, dict[str, Any]] = {}
        self.tasks: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self.fail_tasks: dict[str, str] = {}
        self.next_disk = 0

    # --- setup helpers ----------------------------------------------------------------

    def add(self, vmid: int, config: dict[str, Any], *, node: str = "pve1", status: str = "stopped", kind: str = "lxc"):
        self.guests[vmid] = {
            "node": node,
            "type": kind,
            "status": status,
            "config": dict(config),
            "pending": {},
            "pending_delete": set(),
        }

    def config(self, vmid: int) -> dict[str, Any]:
        guest = self.guests[vmid]
        merged = {**guest["config"], **guest["pending"]}
        for key in guest["pending_delete"]:
            merged.pop(key, None)
        return merged

    @property
    def writes(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [request for request in self.requests if request[0] != "GET"]

    # --- request routing ----------------------------------------------------------------

    def handle(self, method: str, path: str, params: dict[str, Any]) -> Any:
        self.requests.append((method, path, dict(params)))
        if path == "cluster/resources":
            return self._resources()
        if path == "cluster/nextid":
            return str(max([99, *self.guests]) + 1)
        task = re.fullmatch(r"nodes/[^/]+/tasks/([^/]+)/(status|log)", path)
        if task:
            record = self.tasks[task.group(1)]
            return record if task.group(2) == "status" else record["log"]
        if method == "POST" and re.fullmatch(r"nodes/[^/]+/lxc", path):
            return self._create(path.split("/")[1], params)
        match = re.fullmatch(r"nodes/([^/]+)/lxc/(\d+)(/.*)?", path)
        if not match:
            raise ResourceException(501, "Not Implemented", f"no route {method} {path}")
        vmid = int(match.group(2))
        if vmid not in self.guests:
            raise ResourceException(
                500, "Internal Server Error", f"Configuration file 'nodes/pve1/lxc/{vmid}.conf' does not exist"
            )
        return self._guest_call(method, match.group(1), vmid, match.group(3) or "", params)

    def _resources(self) -> list[dict[str, Any]]:
        result = []
        for vmid, guest in sorted(self.guests.items()):
            config = self.config(vmid)
            result.append(
                {
                    "id": f"{guest['type']}/{vmid}",
                    "type": guest["type"],
                    "vmid": vmid,
                    "node": guest["node"],
                    "name": config.get("hostname", f"CT{vmid}"),
                    "status": guest["status"],
                    "template": int(config.get("template", 0)),
                    "tags": config.get("tags", ""),
                }
            )
        return result

    def _guest_call(  # noqa: PLR0911 - one return per route
        self, method: str, node: str, vmid: int, suffix: str, params: dict[str, Any]
    ) -> Any:
        guest = self.guests[vmid]
        if suffix == "/config" and method == "GET":
            return {**self.config(vmid), "digest": "d" * 40}
        if suffix == "/pending":
            return self._pending(vmid)
        if suffix == "/config" and method == "PUT":
            self._update(vmid, params)
            return None
        if suffix == "/resize":
            config = guest["config"]
            config[params["disk"]] = re.sub(r"size=[^,]+", f"size={params['size']}", config[params["disk"]])
            return self._task(node, "resize", vmid)
        if suffix.startswith("/status/"):
            action = suffix.rsplit("/", 1)[1]
            guest["status"] = "stopped" if action in ("stop", "shutdown") else "running"
            if action in ("start", "reboot"):
                self._apply_pending(vmid)
            return self._task(node, f"vz{action}", vmid)
        if suffix == "/template":
            guest["config"]["template"] = 1
            return None
        if suffix == "" and method == "DELETE":
            del self.guests[vmid]
            return self._task(node, "vzdestroy", vmid)
        raise ResourceException(501, "Not Implemented", f"no route {method} {suffix}")

    def _pending(self, vmid: int) -> list[dict[str, Any]]:
        guest = self.guests[vmid]
        items = [{"key": key, "value": value} for key, value in guest["config"].items()]
        for item in items:
            if item["key"] in guest["pending"]:
                item["pending"] = guest["pending"][item["key"]]
            if item["key"] in guest["pending_delete"]:
                item["delete"] = 1
        items += [
            {"key": key, "pending": value} for key, value in guest["pending"].items() if key not in guest["config"]
        ]
        return items

    def _allocate(self, vmid: int, value: str) -> str:
        alloc = re.match(r"^([a-z][\w.-]*):(\d+(?:\.\d+)?)(,.*)?$", value)
        if not alloc:
            return value
        storage, size, rest = alloc.groups()
        volume = f"{storage}:vm-{vmid}-disk-{self.next_disk}"
        self.next_disk += 1
        return f"{volume}{rest or ''},size={size}G"

    def _update(self, vmid: int, params: dict[str, Any]) -> None:
        guest = self.guests[vmid]
        running = guest["status"] == "running"
        for key in filter(None, str(params.pop("delete", "") or "").split(",")):
            if running and key not in HOTPLUG:
                guest["pending_delete"].add(key)
            else:
                guest["config"].pop(key, None)
        params.pop("digest", None)
        for key, raw in params.items():
            value = self._allocate(vmid, str(raw)) if key.startswith(("mp", "rootfs")) else raw
            live = key in HOTPLUG or (key.startswith("mp") and key not in guest["config"])
            if running and not live:
                guest["pending"][key] = value
            else:
                guest["config"][key] = value

    def _apply_pending(self, vmid: int) -> None:
        guest = self.guests[vmid]
        guest["config"].update(guest["pending"])
        for key in guest["pending_delete"]:
            guest["config"].pop(key, None)
        guest["pending"], guest["pending_delete"] = {}, set()

    def _create(self, node: str, params: dict[str, Any]) -> str:
        vmid = int(params.pop("vmid"))
        upid = self._task(node, "vzcreate", vmid)
        if self.tasks[upid]["exitstatus"] != "OK":
            return upid
        for key in ("ostemplate", "storage", "password", "ssh-public-keys", "pool", "start"):
            params.pop(key, None)
        config: dict[str, Any] = {}
        for key, raw in params.items():
            value = self._allocate(vmid, str(raw)) if key.startswith(("rootfs", "mp")) else raw
            if key.startswith("net") and "hwaddr=" not in str(value):
                value = f"{value},hwaddr=BC:24:11:00:00:{vmid % 100:02d},type=veth"
            config[key] = value
        self.add(vmid, config, node=node)
        return upid

    def _task(self, node: str, kind: str, vmid: int) -> str:
        upid = f"UPID:{node}:0000{len(self.tasks):04X}:00000001:6630A1B2:{kind}:{vmid}:root@pam:"
        failure = self.fail_tasks.get(kind)
        self.tasks[upid] = {
            "status": "stopped",
            "exitstatus": failure or "OK",
            "log": [{"n": 1, "t": "starting"}, {"n": 2, "t": f"TASK ERROR: {failure}" if failure else "TASK OK"}],
        }
        return upid


class _Resource:
    def __init__(self, fake: FakePve, path: str) -> None:
        self.fake = fake
        self.path = path

    def get(self, **params):
        return self.fake.handle("GET", self.path, params)

    def post(self, **params):
        return self.fake.handle("POST", self.path, params)

    def put(self, **params):
        return self.fake.handle("PUT", self.path, params)

    def delete(self, **params):
        return self.fake.handle("DELETE", self.path, params)


class ModuleExit(Exception):
    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result)
        self.result = result


@pytest.fixture
def fake_pve(monkeypatch) -> FakePve:
    fake = FakePve()
    monkeypatch.setattr(_pve.PveClient, "_connect", lambda self, verify, timeout: lambda path: _Resource(fake, path))
    monkeypatch.setattr(_pve.time, "sleep", lambda seconds: None)
    return fake


@pytest.fixture
def run_module(monkeypatch):
    """Run a module's main() with args; return its result dict (failed ones carry failed=True)."""

    def exit_json(self, **kwargs):
        raise ModuleExit(json.loads(json.dumps({"failed": False, **kwargs}, default=str)))

    def fail_json(self, msg, **kwargs):
        raise ModuleExit(json.loads(json.dumps({"failed": True, "msg": msg, **kwargs}, default=str)))

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)

    def run(module, args: dict[str, Any], *, check: bool = False, diff: bool = True) -> dict[str, Any]:
        full = {
            "api_host": "127.0.0.1",
            "api_user": "root@pam",
            "api_password": "secret",
            "_ansible_check_mode": check,
            "_ansible_diff": diff,
            **args,
        }
        full = {key: value for key, value in full.items() if value is not None}
        with patch_module_args(full), pytest.raises(ModuleExit) as finished:
            module.main()
        return finished.value.result

    return run
