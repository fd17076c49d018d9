"""PVE worker tasks: UPIDs, task logs, status, configured durations and injected faults.

A task runs its work in a thread after a delay taken from the lab config (`tasks.durations`). Faults
from the config or from `POST /_lab/faults` can make a matching task fail with a given message, take a
given time, or hang until the faults are cleared or the task is stopped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lab.pve.backends.base import BackendError
from lab.pve.config import Fault, LabConfig
from lab.pve.state import StateStore

LOG = logging.getLogger("lab.pve.tasks")
MAX_FINISHED_PER_NODE = 1000
INTERRUPTED = "interrupted by signal"


class TaskError(Exception):
    """Raised by task work: the task ends with this message as its exit status."""


@dataclass
class TaskContext:
    """Context of running task work: the task's fields and its log, which clients can read while it runs."""

    upid: str
    node: str
    type: str
    id: str
    user: str
    store: StateStore
    record: dict[str, Any] = field(repr=False)

    def log(self, line: str) -> None:
        with self.store.mutate():
            self.record["log"].append(line)


TaskWork = Callable[[TaskContext], None]
ErrorHook = Callable[[TaskContext, str], None]


def format_upid(*, node: str, pid: int, pstart: int, starttime: int, task_type: str, task_id: str, user: str) -> str:
    return f"UPID:{node}:{pid:08X}:{pstart:08X}:{starttime:08X}:{task_type}:{task_id}:{user}:"


def parse_upid(upid: str) -> dict[str, Any] | None:
    """Split a UPID into its fields, or return None when it is not one."""
    parts = upid.split(":")
    if len(parts) != 9 or parts[0] != "UPID" or parts[8] != "":
        return None
    try:
        return {
            "node": parts[1],
            "pid": int(parts[2], 16),
            "pstart": int(parts[3], 16),
            "starttime": int(parts[4], 16),
            "type": parts[5],
            "id": parts[6],
            "user": parts[7],
        }
    except ValueError:
        return None


class TaskManager:
    """Starts worker threads for asynchronous API calls and records their status and log in the state."""

    def __init__(self, config: LabConfig, store: StateStore) -> None:
        self.config = config
        self.store = store
        self.pstart = int(time.monotonic() * 100) & 0xFFFFFFFF
        self._faults: list[Fault] = list(config.faults)
        self._fault_uses: dict[int, int] = {}
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._stops: dict[str, threading.Event] = {}
        self._threads: set[threading.Thread] = set()
        self._mark_interrupted()

    # Faults

    def add_fault(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)
            self._release.clear()

    def clear_faults(self) -> None:
        """Remove all faults and let hanging tasks carry on with their work."""
        with self._lock:
            self._faults.clear()
            self._fault_uses.clear()
            self._release.set()

    def faults(self) -> list[dict[str, Any]]:
        with self._lock:
            return [fault.to_dict() for fault in self._faults]

    def _take_fault(self, fields: dict[str, str]) -> Fault | None:
        with self._lock:
            for index, fault in enumerate(self._faults):
                if not fault.matches(fields):
                    continue
                used = self._fault_uses.get(index, 0)
                if fault.times is not None and used >= fault.times:
                    continue
                self._fault_uses[index] = used + 1
                return fault
        return None

    # Tasks

    def spawn(
        self,
        node: str,
        task_type: str,
        task_id: str,
        user: str,
        work: TaskWork,
        *,
        on_error: ErrorHook | None = None,
        error_prefix: str = "",
    ) -> str:
        """Start work in a worker thread and return its UPID at once, as PVE's fork_worker does."""
        starttime = int(time.time())
        with self.store.mutate() as state:
            state["counters"]["pid"] += 1
            pid = state["counters"]["pid"]
            upid = format_upid(
                node=node,
                pid=pid,
                pstart=self.pstart,
                starttime=starttime,
                task_type=task_type,
                task_id=task_id,
                user=user,
            )
            record = {
                "upid": upid,
                "node": node,
                "pid": pid,
                "pstart": self.pstart,
                "starttime": starttime,
                "type": task_type,
                "id": task_id,
                "user": user,
                "status": "running",
                "log": [],
            }
            state["tasks"].setdefault(node, []).append(record)

        context = TaskContext(upid, node, task_type, task_id, user, self.store, record)
        stop = threading.Event()
        self._stops[upid] = stop
        thread = threading.Thread(
            target=self._run,
            args=(record, context, work),
            kwargs={"on_error": on_error, "error_prefix": error_prefix, "stop": stop},
            name=f"task-{task_type}-{task_id}",
            daemon=True,
        )
        self._threads.add(thread)
        thread.start()
        return upid

    def _run(
        self,
        record: dict[str, Any],
        context: TaskContext,
        work: TaskWork,
        *,
        on_error: ErrorHook | None,
        error_prefix: str,
        stop: threading.Event,
    ) -> None:
        fields = {"type": context.type, "id": context.id, "node": context.node, "user": context.user}
        fault = self._take_fault(fields)
        delay = self.config.task_duration(context.type)
        if fault is not None and fault.after_s is not None:
            delay = fault.after_s
        error: str | None = None
        try:
            if stop.wait(delay):
                raise TaskError(INTERRUPTED)
            if fault is not None and fault.hang:
                self._wait_released(stop)
            if fault is not None and fault.fail is not None:
                raise TaskError(fault.fail)
            work(context)
        except (TaskError, BackendError) as exc:
            error = str(exc) if str(exc) == INTERRUPTED else f"{error_prefix}{exc}"
        except Exception as exc:
            LOG.exception("task %s failed unexpectedly", context.upid)
            error = f"{error_prefix}{exc}"
        if error is not None and on_error is not None:
            try:
                on_error(context, error)
            except Exception:
                LOG.exception("cleanup after failed task %s failed", context.upid)
        self._finish(record, context, error)

    def _wait_released(self, stop: threading.Event) -> None:
        while not self._release.wait(0.05):
            if stop.is_set():
                raise TaskError(INTERRUPTED)

    def _finish(self, record: dict[str, Any], context: TaskContext, error: str | None) -> None:
        with self.store.mutate() as state:
            record["log"].append("TASK OK" if error is None else f"TASK ERROR: {error}")
            record["status"] = "stopped"
            record["exitstatus"] = "OK" if error is None else error
            record["endtime"] = int(time.time())
            finished = state["tasks"].get(context.node, [])
            if len(finished) > MAX_FINISHED_PER_NODE:
                del finished[: len(finished) - MAX_FINISHED_PER_NODE]
        self._stops.pop(context.upid, None)
        self._threads.discard(threading.current_thread())

    def stop(self, upid: str) -> bool:
        event = self._stops.get(upid)
        if event is None:
            return False
        event.set()
        return True

    def find(self, node: str, upid: str) -> dict[str, Any] | None:
        with self.store.lock:
            for record in reversed(self.store.data["tasks"].get(node, [])):
                if record["upid"] == upid:
                    return record
        return None

    def list(self, node: str) -> list[dict[str, Any]]:
        with self.store.lock:
            return list(self.store.data["tasks"].get(node, []))

    def running_count(self) -> int:
        return len(self._stops)

    def _mark_interrupted(self) -> None:
        """Tasks still `running` in a state file from an earlier process died with it, as after a node crash."""
        with self.store.mutate() as state:
            for records in state["tasks"].values():
                for record in records:
                    if record["status"] == "running":
                        record["status"] = "stopped"
                        record["exitstatus"] = "unexpected status"
                        record["endtime"] = int(time.time())
                        record["log"] = [*record.get("log", []), "TASK ERROR: unexpected status"]

    def shutdown(self, timeout: float = 2.0) -> None:
        for event in list(self._stops.values()):
            event.set()
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))
