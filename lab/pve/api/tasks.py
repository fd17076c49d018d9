"""Tasks: `GET /nodes/{node}/tasks`, a task's status and log, and stopping a running task."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lab.pve import lxcconf
from lab.pve.app import Envelope, Request, param_error
from lab.pve.formats import split_list
from lab.pve.schema import Prop, schema
from lab.pve.tasks import parse_upid

if TYPE_CHECKING:
    from lab.pve.app import PveApp

UPID_PATH = {"node": lxcconf.NODE, "upid": Prop(optional=False)}
LIST_SCHEMA = schema(
    {
        "node": lxcconf.NODE,
        "errors": Prop("boolean", default=0),
        "limit": Prop("integer", minimum=0, default=50),
        "since": Prop("integer"),
        "source": Prop(enum=("archive", "active", "all"), default="archive"),
        "start": Prop("integer", minimum=0, default=0),
        "statusfilter": Prop(format="pve-task-status-type-list"),
        "typefilter": Prop(),
        "until": Prop("integer"),
        "userfilter": Prop(),
        "vmid": Prop("integer", minimum=100, maximum=999_999_999, format="pve-vmid"),
    }
)
LOG_SCHEMA = schema(
    {
        **UPID_PATH,
        "download": Prop("boolean"),
        "limit": Prop("integer", minimum=0, default=50),
        "start": Prop("integer", minimum=0, default=0),
    }
)
STATUS_FIELDS = ("upid", "node", "pid", "pstart", "starttime", "type", "id", "user", "status", "exitstatus")


def register(app: PveApp) -> None:
    app.route("GET", "/nodes/{node}/tasks", LIST_SCHEMA)(list_tasks)
    app.route("GET", "/nodes/{node}/tasks/{upid}", schema(UPID_PATH))(task_index)
    app.route("DELETE", "/nodes/{node}/tasks/{upid}", schema(UPID_PATH))(stop_task)
    app.route("GET", "/nodes/{node}/tasks/{upid}/status", schema(UPID_PATH))(task_status)
    app.route("GET", "/nodes/{node}/tasks/{upid}/log", LOG_SCHEMA)(task_log)


def _task(request: Request) -> dict[str, Any]:
    app, node, upid = request.app, request.params["node"], request.params["upid"]
    app.require_node(node)
    if parse_upid(upid) is None:
        raise param_error({"upid": "unable to parse worker upid"})
    record = app.tasks.find(node, upid)
    if record is None:
        raise param_error({"upid": "no such task"})
    return record


def _category(exitstatus: str | None) -> str:
    if exitstatus is None:
        return "running"
    if exitstatus == "OK":
        return "ok"
    return "warning" if exitstatus.startswith("WARNINGS") else "error"


def list_tasks(request: Request) -> list[dict[str, Any]]:
    app, params = request.app, request.params
    node = params["node"]
    app.require_node(node)
    source = params.get("source", "archive")
    statuses = set(split_list(params.get("statusfilter", "")))
    entries = []
    for record in reversed(app.tasks.list(node)):
        running = record["status"] == "running"
        if (source == "archive" and running) or (source == "active" and not running):
            continue
        if params.get("errors") and record.get("exitstatus") in (None, "OK"):
            continue
        if "vmid" in params and record["id"] != str(params["vmid"]):
            continue
        if params.get("typefilter") not in (None, record["type"]):
            continue
        if "userfilter" in params and params["userfilter"] not in record["user"]:
            continue
        if statuses and _category(record.get("exitstatus")) not in statuses:
            continue
        if "since" in params and record["starttime"] < params["since"]:
            continue
        if "until" in params and record["starttime"] > params["until"]:
            continue
        entry = {key: record[key] for key in ("upid", "node", "pid", "pstart", "starttime", "type", "id", "user")}
        if not running:
            entry["status"] = record["exitstatus"]
            entry["endtime"] = record["endtime"]
        entries.append(entry)
    start = params.get("start", 0)
    limit = params.get("limit", 50) or 50
    return entries[start : start + limit]


def task_index(request: Request) -> list[dict[str, str]]:
    _task(request)
    return [{"name": "log"}, {"name": "status"}]


def stop_task(request: Request) -> None:
    record = _task(request)
    request.app.tasks.stop(record["upid"])


def task_status(request: Request) -> dict[str, Any]:
    with request.app.store.lock:
        record = _task(request)
        return {key: record[key] for key in STATUS_FIELDS if key in record}


def task_log(request: Request) -> Envelope:
    params = request.params
    with request.app.store.lock:
        lines = list(_task(request)["log"])
    start = params.get("start", 0)
    limit = params.get("limit", 50) or 50  # PVE reads a limit of 0 as the default, 50
    entries = [{"n": number + 1, "t": line} for number, line in enumerate(lines) if start <= number < start + limit]
    return Envelope(entries, {"total": len(lines)})
