# Copyright: (c) 2026, retail.edge maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: drift_report
type: aggregate
short_description: Write what a check-mode run would change, store by store, to a JSON drift report
version_added: 0.1.0
author:
  - retail.edge maintainers (@retail-edge)
description:
  - Meant for provision and deploy playbooks run with C(--check --diff). In check mode every task that
    reports a change shows where a host differs from its declaration, so this callback collects those
    tasks with their differences and groups them by store.
  - The store of a host is the C(id) of its C(retail_edge_store) variable (set by the M(retail.edge.stores)
    inventory plugin), or else the id in the host's C(store_<id>) group. Hosts of no store, such as
    C(localhost) in a play that talks to Vault, are listed apart under C(other_hosts).
  - "For each changed task the report keeps the play, task, action, loop item, a category (C(container),
    C(pool), C(config), C(service), C(package), C(secret) or C(other), from the module), the keys that
    differ, the diff as the module returned it, and the same diff as unified diff text (C(patch)), where
    dict diffs are compared key by key. Keys are the module's C(changed_keys) where it returns them (as
    M(retail.edge.pve_lxc) does), else the top-level keys whose values differ between the diff's
    C(before) and C(after), else the file, path or name the task manages (from the result or the diff
    headers)."
  - Failed and unreachable hosts are reported as errors of their store, since their state is unknown.
    Tasks skipped because their module cannot run in check mode are counted per host as C(unchecked).
  - Handlers are left out; a restart that a handler would do follows from a change already reported.
  - The report is written once, when the run ends, through a temporary file and a rename.
    C(playbooks/drift.yml) runs the check with this callback enabled and renders the report as HTML.
requirements:
  - Enable it with C(callbacks_enabled = retail.edge.drift_report) in C(ansible.cfg) or
    E(ANSIBLE_CALLBACKS_ENABLED).
options:
  report_path:
    description: File the JSON report is written to. Its folder is created when missing.
    type: path
    default: drift-report.json
    env:
      - name: RETAIL_EDGE_DRIFT_REPORT
    ini:
      - section: callback_drift_report
        key: report_path
  max_diff_chars:
    description:
      - Longest diff text (C(before) or C(after)) kept per change; longer texts are cut and marked.
    type: int
    default: 20000
    env:
      - name: RETAIL_EDGE_DRIFT_MAX_DIFF_CHARS
    ini:
      - section: callback_drift_report
        key: max_diff_chars
"""

import datetime
import difflib
import json
import os
import re
import tempfile

from ansible import context
from ansible.plugins.callback import CallbackBase

try:
    from ansible.playbook.handler import Handler
except ImportError:  # pragma: no cover - part of every ansible-core
    Handler = ()

REPORT_FORMAT = "retail.edge/drift-report/v1"
STORE_GROUP = re.compile(r"^store_(?P<id>[a-z0-9][a-z0-9_]*?)(?:_nodes)?$")

# Module name (short or FQCN) -> category of what it manages.
CATEGORIES = {
    "container": {"pve_lxc", "proxmox", "lxc_container", "lxc_gpu"},
    "pool": {"pve_ceph_pool", "ceph_pool"},
    "config": {
        "template",
        "copy",
        "lineinfile",
        "blockinfile",
        "replace",
        "ini_file",
        "assemble",
        "file",
        "sysctl",
        "vault_env_file",
    },
    "service": {"service", "systemd", "systemd_service", "sysvinit"},
    "package": {"apt", "package", "pip", "dnf", "apt_repository", "deb822_repository"},
    "secret": {"vault_kv", "vault_store_access"},
}
# Result keys naming the thing a task manages, in order of preference.
TARGET_KEYS = ("dest", "path", "name")


def categorize(action):
    """Return the category of a module, from its short name or FQCN."""
    short = (action or "").rsplit(".", 1)[-1]
    for category, modules in CATEGORIES.items():
        if short in modules:
            return category
    return "other"


def diff_keys(diffs):
    """Return the sorted top-level keys whose values differ between before and after of dict diffs."""
    keys = set()
    for diff in diffs:
        before, after = diff.get("before"), diff.get("after")
        if isinstance(before, dict) and isinstance(after, dict):
            keys.update(key for key in set(before) | set(after) if before.get(key) != after.get(key))
    return sorted(str(key) for key in keys)


def changed_keys(result, diffs):
    """Return the names of what differs: the module's changed_keys, dict diff keys, or the managed target."""
    declared = result.get("changed_keys")
    if isinstance(declared, list) and declared:
        return sorted(str(key) for key in declared)
    keys = diff_keys(diffs)
    if keys:
        return keys
    for name in TARGET_KEYS:
        value = result.get(name)
        if isinstance(value, str) and value:
            return [value]
    # File modules in check mode return no dest, but name the file in the diff headers.
    headers = {diff.get("after_header") or diff.get("before_header") for diff in diffs}
    return sorted(header for header in headers if isinstance(header, str) and header.startswith("/"))


def _lines(value):
    """Return the lines a diff side is compared by: `key: value` per dict key, or the text's lines."""
    if isinstance(value, dict):
        return [f"{key}: {json.dumps(value[key], sort_keys=True, default=str)}\n" for key in sorted(value, key=str)]
    if value is None:
        return []
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return [line if line.endswith("\n") else line + "\n" for line in text.splitlines()]


def unified_diff(diffs, context_lines=3):
    """Return one unified diff text for a task's diffs, dict diffs compared key by key."""
    chunks = []
    for diff in diffs:
        if "before" not in diff and "after" not in diff:
            continue
        chunks.extend(
            difflib.unified_diff(
                _lines(diff.get("before")),
                _lines(diff.get("after")),
                fromfile=str(diff.get("before_header", "before")),
                tofile=str(diff.get("after_header", "after")),
                n=context_lines,
            )
        )
    return "".join(chunks)


def clip(value, limit):
    """Return value with strings longer than limit cut, and dicts or lists unchanged."""
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + f"\n[... {len(value) - limit} more characters left out of the report]"
    return value


class CallbackModule(CallbackBase):
    """Collect changed tasks and their diffs per store and write them as one JSON report."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "retail.edge.drift_report"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display=None):
        super().__init__(display=display)
        self._playbooks = []
        self._play_name = ""
        self._hosts = {}
        self._started = datetime.datetime.now(datetime.UTC)

    # --- collection ----------------------------------------------------------------------

    def _host_entry(self, host):
        name = host.get_name()
        entry = self._hosts.get(name)
        if entry is None:
            entry = {"store": self._store_of(host), "changes": [], "errors": [], "unchecked": 0}
            self._hosts[name] = entry
        return entry

    @staticmethod
    def _store_of(host):
        """Return the id of the store a host belongs to, or None."""
        store = host.vars.get("retail_edge_store")
        if isinstance(store, dict) and store.get("id"):
            return str(store["id"])
        for group in host.get_groups():
            match = STORE_GROUP.match(group.get_name())
            if match:
                return match.group("id")
        return None

    @staticmethod
    def _parts(result):
        """Return (host, task, result dict) of a callback result on ansible-core 2.18 and later."""
        host = getattr(result, "host", None) or result._host
        task = getattr(result, "task", None) or result._task
        data = getattr(result, "result", None)
        return host, task, result._result if data is None else data

    def _record_change(self, result, item=None):
        host, task, data = self._parts(result)
        entry = self._host_entry(host)
        if isinstance(task, Handler) or not data.get("changed"):
            return
        action = getattr(task, "resolved_action", None) or task.action
        raw_diff = data.get("diff") or []
        diffs = raw_diff if isinstance(raw_diff, list) else [raw_diff]
        limit = self.get_option("max_diff_chars")
        trimmed = []
        for diff in diffs:
            if isinstance(diff, dict):
                trimmed.append({key: clip(value, limit) for key, value in diff.items()})
        change = {
            "play": self._play_name,
            "task": task.get_name(),
            "action": action,
            "category": categorize(action),
            "item": None if item is None else self._item_label(result, item),
            "keys": changed_keys(data, trimmed),
            "patch": clip(unified_diff(trimmed), limit),
            "diff": trimmed,
        }
        if data.get("censored"):
            change["censored"] = True
        entry["changes"].append(change)

    def _item_label(self, result, item):
        label = self._parts(result)[2].get("_ansible_item_label", item)
        return label if isinstance(label, (str, int, float, bool)) else json.dumps(label, sort_keys=True, default=str)

    def _record_error(self, result, kind):
        host, task, data = self._parts(result)
        self._host_entry(host)["errors"].append(
            {"play": self._play_name, "task": task.get_name(), "kind": kind, "msg": str(data.get("msg", ""))[:2000]}
        )

    # --- callback events -----------------------------------------------------------------

    def v2_playbook_on_start(self, playbook):
        self._playbooks.append(os.path.abspath(playbook._file_name))

    def v2_playbook_on_play_start(self, play):
        self._play_name = play.get_name()

    def v2_runner_on_ok(self, result):
        if isinstance(self._parts(result)[2].get("results"), list):
            # A loop: every item was reported on its own through v2_runner_item_on_ok.
            self._host_entry(self._parts(result)[0])
            return
        self._record_change(result)

    def v2_runner_item_on_ok(self, result):
        self._record_change(result, item=self._parts(result)[2].get("item"))

    def v2_runner_on_skipped(self, result):
        host, _task, data = self._parts(result)
        entry = self._host_entry(host)
        if "check mode" in str(data.get("msg", "")):
            entry["unchecked"] += 1

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if ignore_errors:
            self._host_entry(self._parts(result)[0])
            return
        self._record_error(result, "failed")

    def v2_runner_on_unreachable(self, result):
        self._record_error(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        report = self.report()
        self._write(report)
        summary = report["summary"]
        self._display.display(
            f"drift report: {summary['drifted']} of {summary['stores']} stores differ from their declaration, "
            f"{summary['errors']} could not be checked; written to {self.get_option('report_path')}"
        )

    # --- report --------------------------------------------------------------------------

    def report(self):
        """Return the report of everything recorded so far, grouped by store."""
        stores = {}
        other_hosts = {}
        for host_name in sorted(self._hosts):
            entry = self._hosts[host_name]
            fields = {key: entry[key] for key in ("changes", "errors", "unchecked")}
            if entry["store"] is None:
                other_hosts[host_name] = fields
                continue
            store = stores.setdefault(entry["store"], {"status": "in_sync", "keys": [], "hosts": {}})
            store["hosts"][host_name] = fields
        for store in stores.values():
            hosts = store["hosts"].values()
            keys = {
                f"{name}: {key}"
                for name, host in store["hosts"].items()
                for change in host["changes"]
                for key in change["keys"] or [change["task"]]
            }
            store["keys"] = sorted(keys)
            if any(host["errors"] for host in hosts):
                store["status"] = "error"
            elif any(host["changes"] for host in hosts):
                store["status"] = "drifted"
        check = bool(context.CLIARGS.get("check", False))
        return {
            "format": REPORT_FORMAT,
            "started_at": self._started.isoformat(timespec="seconds"),
            "finished_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "check_mode": check,
            "diff_mode": bool(context.CLIARGS.get("diff", False)),
            "playbooks": self._playbooks,
            "summary": {
                "stores": len(stores),
                "drifted": sum(1 for store in stores.values() if store["status"] == "drifted"),
                "errors": sum(1 for store in stores.values() if store["status"] == "error"),
                "in_sync": sum(1 for store in stores.values() if store["status"] == "in_sync"),
                "hosts": len(self._hosts),
            },
            "stores": dict(sorted(stores.items())),
            "other_hosts": other_hosts,
        }

    def _write(self, report):
        path = os.path.abspath(os.path.expanduser(self.get_option("report_path")))
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        handle, tmp = tempfile.mkstemp(prefix=".drift-", suffix=".json", dir=folder)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump(report, stream, indent=1, sort_keys=False, default=str)
                stream.write("\n")
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
