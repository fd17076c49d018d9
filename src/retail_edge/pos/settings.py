"""Typed settings of the POS cache server and its sync agent, read from a YAML file and environment variables.

Precedence, lowest first: field defaults, the YAML file (``--config`` or ``RETAIL_EDGE_POS_CONFIG``), one
environment variable per field named ``RETAIL_EDGE_POS_<FIELD>`` (``RETAIL_EDGE_POS_STORE_ID``), then the
command-line options. The HQ token can come from ``hq_token_file`` instead of ``hq_token``, so that it stays out
of the process environment.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from retail_edge.common.settings import SettingsError, load_settings

ENV_PREFIX = "RETAIL_EDGE_POS_"
STORE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class PosSettings:
    """Settings of one store's POS cache; every field is documented in ``docs/pos-cache.md``."""

    store_id: str
    db_path: Path
    hq_url: str
    hq_token: str = field(default="", repr=False)
    hq_token_file: Path | None = None
    inventory_url: str = ""
    listen_host: str = "127.0.0.1"
    listen_port: int = 8470
    session_ttl_seconds: float = 12 * 3600.0
    login_max_failures: int = 5
    login_lockout_seconds: float = 60.0
    sync_batch_size: int = 500
    sync_poll_interval_seconds: float = 0.5
    sync_backoff_initial_seconds: float = 0.5
    sync_backoff_max_seconds: float = 30.0
    sync_request_timeout_seconds: float = 15.0
    replica_pull_interval_seconds: float = 30.0
    synced_retention_days: float = 30.0
    sync_listen_host: str = "127.0.0.1"
    sync_listen_port: int = 0
    log_level: str = "INFO"

    def validate(self) -> None:
        """Raise SettingsError naming the first invalid setting."""
        if not STORE_ID_PATTERN.fullmatch(self.store_id):
            raise SettingsError(f"store_id {self.store_id!r} is invalid: use 1-64 characters from A-Z a-z 0-9 . _ -")
        parsed = urlsplit(self.hq_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise SettingsError(f"hq_url {self.hq_url!r} is invalid: expected http(s)://host[:port][/prefix]")
        if self.inventory_url:
            parsed = urlsplit(self.inventory_url)
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                raise SettingsError(
                    f"inventory_url {self.inventory_url!r} is invalid: expected http(s)://host[:port], or empty to"
                    " turn forwarding off"
                )
        for name in ("listen_port", "sync_listen_port"):
            port = getattr(self, name)
            if not 0 <= port <= 65535:
                raise SettingsError(f"{name} {port} is outside 0-65535")
        if not 1 <= self.sync_batch_size <= 1000:
            raise SettingsError(f"sync_batch_size {self.sync_batch_size} is outside 1-1000 (the HQ batch limit)")
        positive = (
            "session_ttl_seconds",
            "login_lockout_seconds",
            "sync_poll_interval_seconds",
            "sync_backoff_initial_seconds",
            "sync_request_timeout_seconds",
            "replica_pull_interval_seconds",
            "synced_retention_days",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name} must be greater than 0, got {getattr(self, name)}")
        if self.sync_backoff_max_seconds < self.sync_backoff_initial_seconds:
            raise SettingsError(
                f"sync_backoff_max_seconds ({self.sync_backoff_max_seconds}) is below sync_backoff_initial_seconds"
                f" ({self.sync_backoff_initial_seconds})"
            )
        if self.login_max_failures < 1:
            raise SettingsError(f"login_max_failures must be at least 1, got {self.login_max_failures}")
        if self.log_level.upper() not in LOG_LEVELS:
            raise SettingsError(f"log_level {self.log_level!r} is not one of {', '.join(LOG_LEVELS)}")

    @property
    def hq_base_url(self) -> str:
        return self.hq_url.rstrip("/")

    def resolve_hq_token(self) -> str:
        """Return the HQ bearer token from ``hq_token`` or ``hq_token_file``; raise SettingsError if neither is set."""
        if self.hq_token:
            return self.hq_token
        if self.hq_token_file is None:
            raise SettingsError("set hq_token or hq_token_file: the sync agent needs the store's HQ bearer token")
        try:
            token = self.hq_token_file.read_text().strip()
        except OSError as exc:
            raise SettingsError(f"hq_token_file {self.hq_token_file}: cannot read it ({exc.strerror})") from exc
        if not token:
            raise SettingsError(f"hq_token_file {self.hq_token_file} is empty")
        return token


def load_pos_settings(config_file: Path | None = None, overrides: Mapping[str, Any] | None = None) -> PosSettings:
    """Load PosSettings from the YAML file and ``RETAIL_EDGE_POS_*`` variables, then apply command-line overrides."""
    settings = load_settings(PosSettings, ENV_PREFIX, config_file)
    changes = {name: value for name, value in (overrides or {}).items() if value is not None}
    if changes:
        settings = dataclasses.replace(settings, **changes)
        settings.validate()
    return settings
