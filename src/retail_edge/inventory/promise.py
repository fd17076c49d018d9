"""Pickup promise calculation: stock check and picker scheduling, with no I/O.

Pickers work orders one at a time in arrival order. A new order goes to the picker who is free first; its
pick time is a fixed overhead plus a time per order line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class QueuedOrder:
    """An order already promised and not yet ready: its picker, pick start and ready time (epoch seconds)."""

    picker: int
    pick_start: float
    ready_at: float


@dataclass(frozen=True)
class PickingPolicy:
    pickers_on_shift: int
    pick_seconds_per_line: float
    order_overhead_s: float
    horizon_s: float


@dataclass
class PromisePlan:
    """Outcome of a promise: the picker and times when it can be met, else the reasons why not."""

    picker: int = -1
    pick_start: float = 0.0
    ready_at: float = 0.0
    orders_ahead: int = 0
    reasons: list[dict[str, Any]] = field(default_factory=list)

    @property
    def met(self) -> bool:
        return not self.reasons


def picker_free_times(queue: Sequence[QueuedOrder], pickers: int, now: float) -> tuple[list[float], list[int]]:
    """Return when each picker on shift is free and how many orders each still has.

    Orders of a picker who has left the shift (index >= pickers) move, with their remaining work, to whichever
    picker is free first.
    """
    free_at = [now] * pickers
    queued = [0] * pickers
    for order in sorted(queue, key=lambda order: order.pick_start):
        if order.ready_at <= now:
            continue
        if order.picker < pickers:
            free_at[order.picker] = max(free_at[order.picker], order.ready_at)
            queued[order.picker] += 1
            continue
        remaining = order.ready_at - max(now, order.pick_start)
        earliest = min(range(pickers), key=lambda index: free_at[index])
        free_at[earliest] += remaining
        queued[earliest] += 1
    return free_at, queued


def plan_promise(
    lines: Mapping[str, int],
    available: Mapping[str, int | None],
    queue: Sequence[QueuedOrder],
    policy: PickingPolicy,
    now: float,
) -> PromisePlan:
    """Check stock for every line and schedule the order; ``available[sku]`` is None for an unknown SKU."""
    plan = PromisePlan()
    for sku, qty in lines.items():
        stock = available.get(sku)
        if stock is None:
            plan.reasons.append({"reason": "unknown_sku", "sku": sku})
        elif stock < qty:
            plan.reasons.append({"reason": "insufficient_stock", "sku": sku, "requested": qty, "available": stock})
    if policy.pickers_on_shift == 0:
        plan.reasons.append({"reason": "no_pickers_on_shift"})
    if plan.reasons:
        return plan

    free_at, queued = picker_free_times(queue, policy.pickers_on_shift, now)
    picker = min(range(policy.pickers_on_shift), key=lambda index: free_at[index])
    plan.picker = picker
    plan.pick_start = free_at[picker]
    plan.ready_at = plan.pick_start + policy.order_overhead_s + policy.pick_seconds_per_line * len(lines)
    plan.orders_ahead = queued[picker]
    if plan.ready_at - now > policy.horizon_s:
        plan.reasons.append(
            {
                "reason": "picking_capacity_exceeded",
                "ready_in_s": round(plan.ready_at - now, 1),
                "horizon_s": policy.horizon_s,
            }
        )
    return plan
