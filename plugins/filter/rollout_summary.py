# Copyright: (c) 2026, retail.edge maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: rollout_summary
short_description: Summarize a rollout - every store with its result, and whether the rollout goes on or stopped
version_added: 0.1.0
author:
  - retail.edge maintainers (@retail-edge)
description:
  - Takes the plan made by P(retail.edge.rollout_plan#filter) and the per-store records of the change, and
    returns one entry per store in rollout order with its result - C(succeeded), C(failed) or C(not_started) -
    and the status of the rollout as a whole.
  - The status is C(stopped) when a canary store of the batch just finished failed, or when more than
    O(max_fail_percentage) of that batch failed (the rule Ansible applies to C(max_fail_percentage)), or when
    every store of that batch failed. Otherwise it is C(completed) when no store is left, with
    C(completed_with_failures) when some failed, and C(in_progress) while stores wait.
options:
  _input:
    description: The plan returned by P(retail.edge.rollout_plan#filter).
    type: dict
    required: true
  records:
    description:
      - Results keyed by store id, each with C(status) (C(succeeded) or C(failed)), and optionally C(stage),
        C(message), C(attempt), C(started_at), C(finished_at).
    type: dict
    default: {}
  batch:
    description: Ids of the stores of the batch that just finished; empty before the first batch.
    type: list
    elements: str
    default: []
  max_fail_percentage:
    description: Largest share of failed stores per wave batch with which the rollout goes on.
    type: float
    default: 0
"""

EXAMPLES = r"""
- name: Summarize the rollout after this batch
  ansible.builtin.set_fact:
    summary: >-
      {{ rollout_plan | retail.edge.rollout_summary(records=records, batch=batch_ids, max_fail_percentage=20) }}
"""

RETURN = r"""
_value:
  description: The summary.
  type: dict
  contains:
    status:
      description: C(in_progress), C(stopped), C(completed) or C(completed_with_failures).
      type: str
    reason:
      description: Why the rollout stopped, or an empty string.
      type: str
    counts:
      description: Number of stores per result.
      type: dict
    stores:
      description: Every store in rollout order with C(id), C(wave), C(phase), C(result), C(stage), C(message),
        C(attempt), C(finished_at) and C(earlier) (true when the result comes from an earlier run).
      type: list
      elements: dict
"""

from ansible.errors import AnsibleFilterError

RESULTS = ("succeeded", "failed", "not_started")


def _stopped_reason(entries, batch, max_fail_percentage):
    """Return why the batch that just ended stops the rollout, or an empty string."""
    if not batch:
        return ""
    in_batch = [entry for entry in entries if entry["id"] in batch]
    failed = [entry["id"] for entry in in_batch if entry["result"] == "failed"]
    if not failed:
        return ""
    if any(entry["phase"] == "canary" for entry in in_batch):
        return f"canary store {', '.join(failed)} failed, so no wave was started"
    wave = in_batch[0]["wave"]
    share = 100.0 * len(failed) / len(in_batch)
    if share > max_fail_percentage or len(failed) == len(in_batch):
        return (
            f"{len(failed)} of {len(in_batch)} stores of a {wave} batch failed ({', '.join(failed)}): "
            f"{share:.0f} % is above the {max_fail_percentage:g} % the rollout tolerates"
        )
    return ""


def rollout_summary(plan, records=None, batch=None, max_fail_percentage=0):
    """Return every store of the plan with its result, and the status of the rollout."""
    if not isinstance(plan, dict) or not isinstance(plan.get("stores"), list):
        raise AnsibleFilterError("rollout_summary expects the dict returned by retail.edge.rollout_plan")
    records = records or {}
    try:
        max_fail = float(max_fail_percentage)
    except (TypeError, ValueError):
        raise AnsibleFilterError(f"max_fail_percentage {max_fail_percentage!r} is not a number") from None

    entries = []
    for store in plan["stores"]:
        record = records.get(store["id"]) or {}
        status = record.get("status")
        entries.append(
            {
                "id": store["id"],
                "wave": store["wave"],
                "phase": store["phase"],
                "result": status if status in RESULTS else "not_started",
                "stage": record.get("stage") or "",
                "message": record.get("message") or "",
                "attempt": int(record.get("attempt") or 0),
                "finished_at": record.get("finished_at") or "",
                "earlier": store.get("action") == "skip",
            }
        )

    counts = {result: sum(1 for entry in entries if entry["result"] == result) for result in RESULTS}
    reason = _stopped_reason(entries, set(batch or []), max_fail)
    if reason:
        status = "stopped"
    elif counts["not_started"]:
        status = "in_progress"
    elif counts["failed"]:
        status = "completed_with_failures"
    else:
        status = "completed"
    return {"status": status, "reason": reason, "counts": counts, "stores": entries}


class FilterModule:
    """Rollout summary filter of retail.edge."""

    def filters(self):
        return {"rollout_summary": rollout_summary}
