"""Unit tests of the rollout planning, summary and Prometheus judgement filters."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.retail.edge.plugins.filter.prometheus_check import prometheus_check
from ansible_collections.retail.edge.plugins.filter.rollout_plan import batch_sizes, natural_key, rollout_plan
from ansible_collections.retail.edge.plugins.filter.rollout_summary import rollout_summary


def stores(*waves):
    return [{"id": f"s{index:03d}", "wave": wave, "host": f"s{index:03d}-pve1"} for index, wave in enumerate(waves, 1)]


def vector(*values):
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": {"job": f"j{i}"}, "value": [0, v]} for i, v in enumerate(values)],
        },
    }


@pytest.mark.parametrize(
    ("count", "batch", "sizes"),
    [(10, "25%", [3, 3, 3, 1]), (4, "100%", [4]), (5, 2, [2, 2, 1]), (1, "10%", [1]), (0, "50%", [])],
)
def test_batch_sizes(count, batch, sizes):
    assert batch_sizes(count, batch) == sizes


@pytest.mark.parametrize("batch", ["0", "-1", "0%", "150%", "half"])
def test_invalid_batch_names_the_value(batch):
    with pytest.raises(AnsibleFilterError, match="rollout batch"):
        batch_sizes(4, batch)


def test_wave_order_and_batches():
    plan = rollout_plan(stores("wave10", "canary", "wave2", "wave2", "wave2", "wave10"), batch=2)

    assert [store["id"] for store in plan["stores"]] == ["s002", "s003", "s004", "s005", "s001", "s006"]
    assert plan["canary_hosts"] == ["s002-pve1"]
    assert plan["canary_serial"] == [1]
    assert plan["wave_serial"] == [2, 1, 2]
    assert [wave["name"] for wave in plan["waves"]] == ["wave2", "wave10"]
    assert natural_key("wave2") < natural_key("wave10")


def test_listed_waves_come_first():
    plan = rollout_plan(stores("a", "b", "c"), waves=["c", "a"], batch="100%")
    assert [wave["name"] for wave in plan["waves"]] == ["c", "a", "b"]


def test_done_stores_skipped_failed_retried():
    records = {"s001": {"status": "succeeded"}, "s002": {"status": "failed"}}
    plan = rollout_plan(stores("canary", "wave1", "wave1"), records=records, batch="100%")

    assert plan["canary_hosts"] == []
    assert plan["wave_hosts"] == ["s002-pve1", "s003-pve1"]
    assert plan["stores"][0] == {**plan["stores"][0], "action": "skip", "reason": "succeeded in an earlier run"}

    kept = rollout_plan(stores("canary", "wave1", "wave1"), records=records, retry_failed=False)
    assert kept["wave_hosts"] == ["s003-pve1"]


def test_duplicate_store_rejected():
    with pytest.raises(AnsibleFilterError, match="listed twice"):
        rollout_plan(stores("canary") * 2)


def test_summary_stops_on_a_failed_canary():
    plan = rollout_plan(stores("canary", "wave1"))
    summary = rollout_summary(plan, {"s001": {"status": "failed", "stage": "gate"}}, batch=["s001"])

    assert summary["status"] == "stopped"
    assert summary["reason"] == "canary store s001 failed, so no wave was started"
    assert [store["result"] for store in summary["stores"]] == ["failed", "not_started"]


@pytest.mark.parametrize(
    ("failed", "status"),
    [(["s002"], "in_progress"), (["s002", "s003"], "stopped")],
)
def test_summary_threshold_per_batch(failed, status):
    plan = rollout_plan(stores("canary", "wave1", "wave1", "wave1", "wave1", "wave2"), batch="100%")
    records = {
        store: {"status": "failed" if store in failed else "succeeded"}
        for store in ("s001", "s002", "s003", "s004", "s005")
    }

    summary = rollout_summary(plan, records, batch=["s002", "s003", "s004", "s005"], max_fail_percentage=30)

    assert summary["status"] == status
    assert summary["counts"] == {"succeeded": 5 - len(failed), "failed": len(failed), "not_started": 1}


def test_summary_finished_rollout():
    plan = rollout_plan(stores("canary", "wave1"))
    done = {"s001": {"status": "succeeded"}, "s002": {"status": "failed"}}
    assert rollout_summary(plan, done, batch=["s002"], max_fail_percentage=100)["status"] == "stopped"
    assert rollout_summary(plan, done, batch=[], max_fail_percentage=100)["status"] == "completed_with_failures"
    assert rollout_summary(plan, {"s001": {"status": "succeeded"}, "s002": {"status": "succeeded"}})["status"] == (
        "completed"
    )


def test_prometheus_check_judges_every_series():
    check = {"name": "targets up", "expr": "up", "min": 1}
    assert prometheus_check(vector("1", "1"), check)["ok"] is True
    verdict = prometheus_check(vector("1", "0"), check)
    assert verdict["ok"] is False
    assert verdict["detail"] == 'targets up: {job="j1"} = 0 is below 1'


def test_prometheus_check_empty_answers_and_errors():
    check = {"name": "critical alerts", "expr": "count(ALERTS)", "max": 0}
    assert prometheus_check(vector(), check) == {
        "ok": False,
        "values": [],
        "detail": "critical alerts: no data for count(ALERTS)",
    }
    assert prometheus_check(vector(), {**check, "empty_value": 0})["ok"] is True
    assert prometheus_check(vector("NaN"), {**check, "max": 5})["ok"] is False
    error = prometheus_check({"status": "error", "errorType": "bad_data", "error": "parse error"}, check)
    assert error["detail"] == "critical alerts: Prometheus returned bad_data: parse error"
    scalar = {"status": "success", "data": {"resultType": "scalar", "result": [0, "0.2"]}}
    assert prometheus_check(scalar, {"name": "p95", "max": 0.25})["ok"] is True
