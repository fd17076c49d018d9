"""Container run state: `status/current` and the start, stop, shutdown and reboot tasks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lab.pve import guests, lxcconf
from lab.pve.api.lxc import container_status, start_container
from lab.pve.app import Request, fail
from lab.pve.schema import Prop, schema
from lab.pve.tasks import TaskContext

if TYPE_CHECKING:
    from lab.pve.app import PveApp

PATH = {"node": lxcconf.NODE, "vmid": lxcconf.VMID}
INDEX_SCHEMA = schema(PATH)
CURRENT_SCHEMA = schema(PATH)
START_SCHEMA = schema({**PATH, "debug": Prop("boolean", default=0), "skiplock": Prop("boolean")})
STOP_SCHEMA = schema({**PATH, "overrule-shutdown": Prop("boolean", default=0), "skiplock": Prop("boolean")})
SHUTDOWN_SCHEMA = schema(
    {**PATH, "forceStop": Prop("boolean", default=0), "timeout": Prop("integer", minimum=0, default=60)}
)
REBOOT_SCHEMA = schema({**PATH, "timeout": Prop("integer", minimum=0)})


def register(app: PveApp) -> None:
    app.route("GET", "/nodes/{node}/lxc/{vmid}/status", INDEX_SCHEMA)(status_index)
    app.route("GET", "/nodes/{node}/lxc/{vmid}/status/current", CURRENT_SCHEMA)(current)
    app.route("POST", "/nodes/{node}/lxc/{vmid}/status/start", START_SCHEMA)(start)
    app.route("POST", "/nodes/{node}/lxc/{vmid}/status/stop", STOP_SCHEMA)(stop)
    app.route("POST", "/nodes/{node}/lxc/{vmid}/status/shutdown", SHUTDOWN_SCHEMA)(shutdown)
    app.route("POST", "/nodes/{node}/lxc/{vmid}/status/reboot", REBOOT_SCHEMA)(reboot)


def status_index(request: Request) -> list[dict[str, str]]:
    with request.app.store.lock:
        guests.load_guest(request.app, request.params["node"], request.params["vmid"])
    return [{"subdir": name} for name in ("current", "start", "stop", "shutdown", "reboot", "suspend", "resume")]


def current(request: Request) -> dict[str, Any]:
    app, node, vmid = request.app, request.params["node"], request.params["vmid"]
    with app.store.lock:
        record = guests.load_guest(app, node, vmid)
        entry = container_status(app, vmid, record)
    entry["ha"] = {"managed": 0}
    return entry


def _load_for_action(request: Request, *, skiplock: bool = False) -> tuple[PveApp, str, int, bool]:
    app, node, vmid = request.app, request.params["node"], request.params["vmid"]
    with app.store.lock:
        record = guests.load_guest(app, node, vmid)
        if skiplock and not request.caller.is_root_password_login:
            raise fail("Only root may use this option.")
        if not skiplock:
            guests.check_lock(record, vmid)
        running = guests.is_running(app, record, vmid)
        is_template = bool(record["conf"].get("template"))
    if is_template and request.route.template.endswith("/start"):
        raise fail("you can't start a CT if it's a template")
    return app, node, vmid, running


def start(request: Request) -> str:
    app, node, vmid, running = _load_for_action(request, skiplock=bool(request.params.get("skiplock")))
    if running:
        raise fail(f"CT {vmid} already running")

    def work(context: TaskContext) -> None:
        start_container(app, node, vmid, context)

    return app.tasks.spawn(node, "vzstart", str(vmid), request.caller.authid, work)


def _stop_task(request: Request, task_type: str, *, skiplock: bool = False) -> str:
    app, node, vmid, running = _load_for_action(request, skiplock=skiplock)
    if not running:
        raise fail(f"CT {vmid} not running")

    def work(context: TaskContext) -> None:
        del context
        app.backend.stop(node, vmid)

    return app.tasks.spawn(node, task_type, str(vmid), request.caller.authid, work)


def stop(request: Request) -> str:
    return _stop_task(request, "vzstop", skiplock=bool(request.params.get("skiplock")))


def shutdown(request: Request) -> str:
    return _stop_task(request, "vzshutdown")


def reboot(request: Request) -> str:
    """Reboot = shutdown, apply pending changes, start (PVE restarts the container to apply them)."""
    app, node, vmid, running = _load_for_action(request)
    if not running:
        raise fail(f"CT {vmid} not running")

    def work(context: TaskContext) -> None:
        app.backend.stop(node, vmid)
        start_container(app, node, vmid, context)

    return app.tasks.spawn(node, "vzreboot", str(vmid), request.caller.authid, work)
