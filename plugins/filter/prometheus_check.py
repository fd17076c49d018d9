# Copyright: (c) 2026, retail.edge maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: prometheus_check
short_description: Judge the response to a Prometheus instant query against a lower and an upper bound
version_added: 0.1.0
author:
  - retail.edge maintainers (@retail-edge)
description:
  - Takes the JSON body that Prometheus returns for C(GET /api/v1/query) and a check, and says whether every
    value of the result lies within the check's bounds.
  - Vector results are judged series by series, so C(up) fails when any target is down. Scalar results are
    one value. NaN and infinite values fail.
  - A query without any series fails with C(no data), unless the check gives C(empty_value), the value that an
    empty result counts as. For example V(0) suits C(ALERTS{severity="critical"}), which is empty when nothing fires.
options:
  _input:
    description: The decoded JSON body of the query response.
    type: dict
    required: true
  check:
    description:
      - "The check: C(name), C(expr) (the PromQL expression, only for messages), optional C(min) and C(max)
        (inclusive bounds) and optional C(empty_value)."
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Query every scrape target of the store
  ansible.builtin.uri:
    url: "http://198.51.100.28:9090/api/v1/query?query={{ 'min(up)' | urlencode }}"
    return_content: true
  register: up

- name: Fail when a target is down
  ansible.builtin.assert:
    that: "(up.json | retail.edge.prometheus_check({'name': 'targets up', 'expr': 'min(up)', 'min': 1})).ok"
"""

RETURN = r"""
_value:
  description: The judgement.
  type: dict
  contains:
    ok:
      description: Whether every value lies within the bounds.
      type: bool
    values:
      description: The values of the result, one per series.
      type: list
      elements: float
    detail:
      description: A sentence naming the check, the values and the bound they break, for reports.
      type: str
"""

import math

from ansible.errors import AnsibleFilterError


def _number(value, field):
    try:
        return float(value)
    except (TypeError, ValueError):
        raise AnsibleFilterError(f"prometheus_check: {field} {value!r} is not a number") from None


def _values(body):
    """Return the samples of a query response, or raise ValueError with Prometheus' error."""
    if not isinstance(body, dict):
        raise ValueError("the response is not a Prometheus API JSON object")
    if body.get("status") != "success":
        raise ValueError(f"Prometheus returned {body.get('errorType', 'error')}: {body.get('error', body)}")
    data = body.get("data") or {}
    kind = data.get("resultType")
    result = data.get("result")
    if kind == "vector":
        return [(sample.get("metric") or {}, float(sample["value"][1])) for sample in result or []]
    if kind == "scalar":
        return [({}, float(result[1]))]
    raise ValueError(f"result type {kind!r} cannot be judged; write an instant query that returns a vector or scalar")


def _label(metric):
    inner = ",".join(f'{key}="{value}"' for key, value in sorted(metric.items()) if key != "__name__")
    return f"{metric.get('__name__', '')}{{{inner}}}" if inner or metric.get("__name__") else ""


def prometheus_check(body, check):
    """Return {ok, values, detail} for a query response judged by the check's min, max and empty_value."""
    if not isinstance(check, dict) or not check.get("name"):
        raise AnsibleFilterError("prometheus_check needs a check dict with at least a name")
    name = check["name"]
    low = None if check.get("min") is None else _number(check["min"], f"{name}: min")
    high = None if check.get("max") is None else _number(check["max"], f"{name}: max")
    try:
        samples = _values(body)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        return {"ok": False, "values": [], "detail": f"{name}: {exc}"}

    if not samples:
        if check.get("empty_value") is None:
            return {"ok": False, "values": [], "detail": f"{name}: no data for {check.get('expr', 'the query')}"}
        samples = [({}, _number(check["empty_value"], f"{name}: empty_value"))]

    values = [value for _metric, value in samples]
    broken = []
    for metric, value in samples:
        where = _label(metric)
        if math.isnan(value) or math.isinf(value):
            broken.append(f"{where or 'value'} is {value}")
        elif low is not None and value < low:
            broken.append(f"{where or 'value'} = {value:g} is below {low:g}")
        elif high is not None and value > high:
            broken.append(f"{where or 'value'} = {value:g} is above {high:g}")
    if broken:
        return {"ok": False, "values": values, "detail": f"{name}: " + "; ".join(broken)}
    listed = ", ".join(f"{value:g}" for value in values[:5]) + (", ..." if len(values) > 5 else "")
    return {"ok": True, "values": values, "detail": f"{name}: {listed} within bounds"}


class FilterModule:
    """Prometheus query judgement filter of retail.edge."""

    def filters(self):
        return {"prometheus_check": prometheus_check}
