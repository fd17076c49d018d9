# Copyright: (c) 2026, retail.edge maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: rollout_plan
short_description: Order stores into a canary phase and wave batches for a rollout, skipping stores already done
version_added: 0.1.0
author:
  - retail.edge maintainers (@retail-edge)
description:
  - Takes the stores of a rollout and the results recorded by earlier runs of the same change, and returns
    the order in which this run handles them. Each store has C(id), C(wave) and C(host), the inventory host
    that represents the store in the rollout plays.
  - Stores of the canary wave come first. The other waves follow in the order of O(waves), and waves it does
    not name follow in natural order (C(wave2) before C(wave10)).
  - Each wave is cut into batches of O(batch) stores, so that a batch never spans two waves. The batch sizes
    form the C(serial) list of the play that rolls the waves out.
  - A store whose recorded result is C(succeeded) is skipped. A C(failed) store is handled again unless
    O(retry_failed=false).
options:
  _input:
    description: The stores, each a dict with C(id), C(wave) and C(host).
    type: list
    elements: dict
    required: true
  records:
    description: Results of earlier runs, keyed by store id; each a dict with at least C(status).
    type: dict
    default: {}
  canary_wave:
    description: Name of the wave whose stores go first, one batch of O(canary_batch) at a time.
    type: str
    default: canary
  waves:
    description: Order of the other waves. Waves not listed follow in natural order.
    type: list
    elements: str
    default: []
  batch:
    description: Stores per batch within a wave, as a count (V(5)) or a share of the wave (V(25%), rounded up).
    type: raw
    default: 25%
  canary_batch:
    description: Canary stores per batch.
    type: int
    default: 1
  retry_failed:
    description: Handle stores again whose recorded result is C(failed).
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Plan the rollout
  ansible.builtin.set_fact:
    rollout_plan: "{{ stores | retail.edge.rollout_plan(records=done, waves=['wave1', 'wave2'], batch='50%') }}"
"""

RETURN = r"""
_value:
  description: The plan.
  type: dict
  contains:
    stores:
      description: Every store in rollout order, with C(id), C(wave), C(host), C(phase) (C(canary) or C(waves))
        and C(action) (C(run), or C(skip) with the reason in C(reason)).
      type: list
      elements: dict
    canary_hosts:
      description: Hosts of the canary stores this run handles, in order.
      type: list
      elements: str
    canary_serial:
      description: Batch sizes of the canary play.
      type: list
      elements: int
    wave_hosts:
      description: Hosts of the other stores this run handles, wave by wave.
      type: list
      elements: str
    wave_serial:
      description: Batch sizes of the wave play, one per batch; no batch spans two waves.
      type: list
      elements: int
    waves:
      description: The waves in order, each with C(name), C(stores) (ids this run handles) and C(batches).
      type: list
      elements: dict
"""

import math
import re

from ansible.errors import AnsibleFilterError

_NATURAL = re.compile(r"(\d+)")


def natural_key(name):
    """Sort key that orders wave2 before wave10."""
    return [int(part) if part.isdigit() else part for part in _NATURAL.split(str(name))]


def batch_sizes(count, batch):
    """Return the batch sizes that cut count stores into batches of `batch` (a count or 'N%')."""
    if count == 0:
        return []
    text = str(batch).strip()
    try:
        if text.endswith("%"):
            share = float(text[:-1])
            if not 0 < share <= 100:
                raise ValueError
            size = max(1, math.ceil(count * share / 100))
        else:
            size = int(text)
            if size < 1:
                raise ValueError
    except ValueError:
        raise AnsibleFilterError(
            f"rollout batch {batch!r} is invalid; give a store count such as 5 or a share of the wave such as 25%"
        ) from None
    full, rest = divmod(count, size)
    return [size] * full + ([rest] if rest else [])


def rollout_plan(
    stores, records=None, *, canary_wave="canary", waves=None, batch="25%", canary_batch=1, retry_failed=True
):
    """Return the rollout order of stores: the canary phase, then each wave in batches."""
    if not isinstance(stores, list):
        raise AnsibleFilterError(f"rollout_plan expects a list of stores, got {type(stores).__name__}")
    records = records or {}
    seen = set()
    by_wave = {}
    for store in stores:
        if not isinstance(store, dict) or not {"id", "wave", "host"} <= set(store):
            raise AnsibleFilterError(f"rollout_plan: every store needs id, wave and host, got {store!r}")
        if store["id"] in seen:
            raise AnsibleFilterError(f"rollout_plan: store {store['id']!r} is listed twice")
        seen.add(store["id"])
        by_wave.setdefault(str(store["wave"]), []).append(store)

    listed = [str(wave) for wave in waves or []]
    others = sorted((wave for wave in by_wave if wave != canary_wave and wave not in listed), key=natural_key)
    order = [canary_wave, *[wave for wave in listed if wave != canary_wave], *others]

    plan = {"stores": [], "canary_hosts": [], "canary_serial": [], "wave_hosts": [], "wave_serial": [], "waves": []}
    for wave in order:
        members = sorted(by_wave.get(wave, []), key=lambda item: natural_key(item["id"]))
        phase = "canary" if wave == canary_wave else "waves"
        running = []
        for store in members:
            entry = {"id": store["id"], "wave": wave, "host": store["host"], "phase": phase, "action": "run"}
            status = (records.get(store["id"]) or {}).get("status")
            if status == "succeeded":
                entry.update(action="skip", reason="succeeded in an earlier run")
            elif status == "failed" and not retry_failed:
                entry.update(action="skip", reason="failed in an earlier run and retry_failed is false")
            else:
                running.append(store)
            plan["stores"].append(entry)
        hosts = [store["host"] for store in running]
        if phase == "canary":
            plan["canary_hosts"] = hosts
            plan["canary_serial"] = batch_sizes(len(hosts), canary_batch)
        elif members:
            sizes = batch_sizes(len(hosts), batch)
            plan["wave_hosts"].extend(hosts)
            plan["wave_serial"].extend(sizes)
            plan["waves"].append({"name": wave, "stores": [store["id"] for store in running], "batches": sizes})
    return plan


class FilterModule:
    """Rollout planning filter of retail.edge."""

    def filters(self):
        return {"rollout_plan": rollout_plan}
