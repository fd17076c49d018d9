"""In-process checks of the pure parts: promise scheduling, settings loading, rule compilation."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from retail_edge.common.settings import SettingsError, load_settings
from retail_edge.inventory.promise import PickingPolicy, QueuedOrder, plan_promise
from retail_edge.inventory.settings import InventorySettings
from retail_edge.rules import cli as rules_cli
from retail_edge.rules.engine import Limits, RuleEngine, RuleLoadError, Signals
from tests.support import ROOT

EXAMPLES = ROOT / "src" / "retail_edge" / "rules" / "examples"
POLICY = PickingPolicy(pickers_on_shift=2, pick_seconds_per_line=60, order_overhead_s=120, horizon_s=3600)


def test_promise_uses_free_picker():
    queue = [QueuedOrder(picker=0, pick_start=0, ready_at=600)]
    plan = plan_promise({"A": 1}, {"A": 5}, queue, POLICY, now=100)
    assert plan.met
    assert plan.picker == 1
    assert plan.ready_at == 100 + 180


def test_promise_queues_behind_busy_pickers():
    queue = [QueuedOrder(0, 0, 600), QueuedOrder(1, 0, 400), QueuedOrder(1, 400, 700)]
    plan = plan_promise({"A": 1, "B": 2}, {"A": 5, "B": 5}, queue, POLICY, now=100)
    assert plan.picker == 0
    assert plan.pick_start == 600
    assert plan.ready_at == 600 + 120 + 2 * 60
    assert plan.orders_ahead == 1


def test_promise_moves_work_of_pickers_off_shift():
    one_picker = PickingPolicy(1, 60, 120, 3600)
    queue = [QueuedOrder(picker=1, pick_start=100, ready_at=400)]
    plan = plan_promise({"A": 1}, {"A": 1}, queue, one_picker, now=200)
    assert plan.pick_start == 400


def test_promise_reasons():
    plan = plan_promise({"A": 3, "B": 1}, {"A": 2, "B": None}, [], POLICY, now=0)
    assert not plan.met
    assert plan.reasons == [
        {"reason": "insufficient_stock", "sku": "A", "requested": 3, "available": 2},
        {"reason": "unknown_sku", "sku": "B"},
    ]
    late = plan_promise({"A": 1}, {"A": 9}, [QueuedOrder(0, 0, 5000), QueuedOrder(1, 0, 5000)], POLICY, now=0)
    assert late.reasons[0]["reason"] == "picking_capacity_exceeded"


def test_settings_from_file_and_env(tmp_path: Path):
    config = tmp_path / "inventory.yaml"
    config.write_text("store_id: store-0042\nhq_url: http://127.0.0.1:9\nhq_token: t\nworkers: 2\n")
    settings = load_settings(InventorySettings, "X_", config, {"X_WORKERS": "3", "X_STALE_AFTER_S": "5.5"})
    assert settings.store_id == "store-0042"
    assert settings.workers == 3
    assert settings.stale_after_s == 5.5
    assert isinstance(settings.db_path, Path)


@pytest.mark.parametrize(
    ("content", "environ", "message"),
    [
        ("hq_url: http://x\nhq_token: t\n", {}, "required settings are missing: store_id"),
        ("store_id: s\nhq_url: http://x\nhq_token: t\nworkrs: 2\n", {}, "unknown settings ['workrs']"),
        ("store_id: s\nhq_url: http://x\nhq_token: t\n", {"X_WORKERS": "two"}, "'workers' from $X_WORKERS"),
        ("store_id: s\nhq_url: ftp://x\nhq_token: t\n", {}, "hq_url must be an http(s) URL"),
        ("store_id: s\nhq_url: http://x\nhq_token: t\nworkers: 0\n", {}, "workers=0"),
    ],
)
def test_settings_errors_name_the_setting(tmp_path: Path, content: str, environ: dict, message: str):
    config = tmp_path / "inventory.yaml"
    config.write_text(content)
    with pytest.raises(SettingsError) as error:
        load_settings(InventorySettings, "X_", config, environ)
    assert message in str(error.value)


def test_compile_command_writes_wasm(tmp_path: Path):
    rules_dir = tmp_path / "rules"
    shutil.copytree(EXAMPLES, rules_dir)
    assert rules_cli.compile_dir(rules_dir) == 0
    wasm = rules_dir / "perishable_markdown.wasm"
    assert wasm.read_bytes()[:4] == b"\0asm"
    engine = RuleEngine(Limits(fuel=100_000, memory_bytes=1 << 20, time_limit_s=0.5))
    try:
        ruleset = engine.load(rules_dir)
        rule = ruleset.rule_for("SKU-1", "dairy")
        assert rule is not None
        assert rule.name == "perishable-markdown"
        outcome = engine.run(rule, Signals(1000, 400, 0.1, 5, 0, days_to_expiry=0))
        assert (outcome.price_cents, outcome.promo_id, outcome.outcome) == (500, "expiry-50", "ok")
        assert ruleset.rule_for("SKU-1", "unknown-category") is None
    finally:
        engine.close()


def test_manifest_errors_name_the_file(tmp_path: Path):
    engine = RuleEngine(Limits(fuel=1000, memory_bytes=1 << 20, time_limit_s=0.5))
    try:
        with pytest.raises(RuleLoadError, match=r"rules\.yaml"):
            engine.load(tmp_path)
        (tmp_path / "rules.yaml").write_text("rules:\n  - name: x\n    module: missing.wat\n")
        with pytest.raises(RuleLoadError, match=r"missing\.wat"):
            engine.load(tmp_path)
    finally:
        engine.close()


def test_floor_rounds_up_to_a_cent():
    assert Signals(999, 333, 0.1, -1, -1, None).floor_cents == 367
    assert Signals(999, 100, 0.2, -1, -1, None).floor_cents == 120
