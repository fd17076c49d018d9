"""An extension of the PVE double used by the tests: one route, one storage, one task type."""

from __future__ import annotations

from lab.pve.app import PveApp, Request
from lab.pve.config import Storage
from lab.pve.lxcconf import NODE
from lab.pve.schema import Prop, schema
from lab.pve.tasks import TaskContext


def register(app: PveApp) -> None:
    app.register_storage(Storage("sample-rbd", "rbd", ("rootdir", "images"), shared=True, total=50 * 1024**3))
    app.register_task_type("samplework", "a task of the sample extension")

    @app.route("POST", "/nodes/{node}/sample/{name}", schema({"node": NODE, "name": Prop(optional=False)}))
    def start_sample(request: Request) -> str:
        def work(context: TaskContext) -> None:
            context.log(f"working on {request.params['name']}")
            with request.app.store.mutate() as state:
                state["extra"].setdefault("sample", []).append(request.params["name"])

        return request.app.tasks.spawn(
            request.params["node"], "samplework", request.params["name"], request.caller.authid, work
        )
