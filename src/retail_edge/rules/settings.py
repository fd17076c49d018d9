"""Settings of the rules engine service (prefix ``RETAIL_EDGE_RULES_``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from retail_edge.common.settings import SettingsError, load_settings

ENV_PREFIX = "RETAIL_EDGE_RULES_"


@dataclass(frozen=True)
class RulesSettings:
    """Every knob of the rules engine; times are in seconds unless named otherwise."""

    store_id: str
    hq_url: str
    hq_token: str
    rules_dir: Path = Path("/etc/retail-edge/rules")
    catalog_cache_path: Path = Path("/var/lib/retail-edge/rules/catalog.json")
    # Base URL of the inventory API that supplies stock and sales velocity.
    inventory_url: str = "http://127.0.0.1:8081"
    host: str = "127.0.0.1"
    port: int = 8082
    log_level: str = "INFO"

    # Guards of each rule call.
    fuel_per_call: int = 1_000_000
    memory_limit_bytes: int = 4 * 1024 * 1024
    time_limit_ms: float = 50.0

    reload_interval_s: float = 1.0
    catalog_refresh_s: float = 60.0
    hq_timeout_s: float = 10.0
    inventory_timeout_s: float = 0.25
    # How long a computed price is reused; a rules reload or catalog change drops it at once.
    price_cache_s: float = 2.0
    fragment_max_age_s: int = 30
    currency_symbol: str = "$"
    eval_threads: int = 4

    def validate(self) -> None:
        checks = {
            "fuel_per_call": self.fuel_per_call >= 0,
            "memory_limit_bytes": self.memory_limit_bytes >= 65536,
            "time_limit_ms": self.time_limit_ms > 0,
            "reload_interval_s": self.reload_interval_s > 0,
            "catalog_refresh_s": self.catalog_refresh_s > 0,
            "inventory_timeout_s": self.inventory_timeout_s > 0,
            "price_cache_s": self.price_cache_s >= 0,
            "fragment_max_age_s": self.fragment_max_age_s >= 0,
            "eval_threads": self.eval_threads >= 1,
        }
        invalid = [name for name, ok in checks.items() if not ok]
        if invalid:
            values = ", ".join(f"{name}={getattr(self, name)!r}" for name in invalid)
            raise SettingsError(f"rules settings out of range: {values} (memory_limit_bytes needs one 64 KiB page)")
        for name in ("hq_url", "inventory_url"):
            if not getattr(self, name).startswith(("http://", "https://")):
                raise SettingsError(f"{name} must be an http(s) URL, got {getattr(self, name)!r}")


def load(config_file: Path | None = None) -> RulesSettings:
    return load_settings(RulesSettings, ENV_PREFIX, config_file)
