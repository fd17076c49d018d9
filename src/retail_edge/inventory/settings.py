"""Settings of the inventory API and its sync worker (prefix ``RETAIL_EDGE_INVENTORY_``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from retail_edge.common.settings import SettingsError, load_settings

ENV_PREFIX = "RETAIL_EDGE_INVENTORY_"


@dataclass(frozen=True)
class InventorySettings:
    """Every knob of the inventory service; times are in seconds."""

    store_id: str
    hq_url: str
    hq_token: str
    db_path: Path = Path("/var/lib/retail-edge/inventory/inventory.sqlite3")
    host: str = "127.0.0.1"
    port: int = 8081
    workers: int = 1
    log_level: str = "INFO"
    # Directory for prometheus_client's per-process files when workers > 1 (emptied at start).
    metrics_dir: Path = Path("/run/retail-edge/inventory-metrics")

    # Sync worker.
    poll_interval_s: float = 2.0
    page_limit: int = 1000
    hq_timeout_s: float = 10.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    # Stock is reported stale when the last successful exchange with HQ is older than this.
    stale_after_s: float = 60.0

    # HTTP caching: Cache-Control max-age of GET /inventory responses (0 disables caching by Varnish).
    cache_max_age_s: int = 1
    max_batch_skus: int = 100

    # Pickup promises.
    pickers_on_shift: int = 2
    pick_seconds_per_line: float = 90.0
    order_overhead_s: float = 120.0
    reservation_ttl_s: float = 4 * 3600.0
    # A promise whose pickup-ready time lies further ahead than this is rejected as beyond picking capacity.
    promise_horizon_s: float = 8 * 3600.0

    def validate(self) -> None:
        checks = {
            "workers": self.workers >= 1,
            "poll_interval_s": self.poll_interval_s > 0,
            "page_limit": 1 <= self.page_limit <= 5000,
            "hq_timeout_s": self.hq_timeout_s > 0,
            "backoff_initial_s": 0 < self.backoff_initial_s <= self.backoff_max_s,
            "stale_after_s": self.stale_after_s > 0,
            "cache_max_age_s": self.cache_max_age_s >= 0,
            "max_batch_skus": self.max_batch_skus >= 1,
            "pickers_on_shift": self.pickers_on_shift >= 0,
            "pick_seconds_per_line": self.pick_seconds_per_line >= 0,
            "order_overhead_s": self.order_overhead_s >= 0,
            "reservation_ttl_s": self.reservation_ttl_s > 0,
            "promise_horizon_s": self.promise_horizon_s > 0,
        }
        invalid = [name for name, ok in checks.items() if not ok]
        if invalid:
            values = ", ".join(f"{name}={getattr(self, name)!r}" for name in invalid)
            raise SettingsError(f"inventory settings out of range: {values}")
        if not self.hq_url.startswith(("http://", "https://")):
            raise SettingsError(f"hq_url must be an http(s) URL, got {self.hq_url!r}")


def load(config_file: Path | None = None) -> InventorySettings:
    return load_settings(InventorySettings, ENV_PREFIX, config_file)
