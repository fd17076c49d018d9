"""``retail-edge-inventory``: run the inventory API (``api``) or the HQ stock sync worker (``sync``)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

import uvicorn

from retail_edge.common import metrics
from retail_edge.common.logging import configure_logging
from retail_edge.common.settings import SettingsError
from retail_edge.inventory import settings as inventory_settings
from retail_edge.inventory.store import InventoryStore
from retail_edge.inventory.sync import HqFeedClient, StockSync

log = logging.getLogger("retail_edge.inventory")


def run_api(settings: inventory_settings.InventorySettings) -> None:
    if settings.workers > 1:
        # Each worker writes its request metrics to files that /metrics merges.
        metrics.prepare_multiprocess_dir(settings.metrics_dir)
    InventoryStore(settings.db_path).close()  # create the schema once, before the workers race to
    uvicorn.run(
        "retail_edge.inventory.api:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        lifespan="on",
    )


def run_sync(settings: inventory_settings.InventorySettings) -> None:
    store = InventoryStore(settings.db_path)
    client = HqFeedClient(settings)
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        log.info("stop requested", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        StockSync(settings, store, client).run(stop)
    finally:
        client.close()
        store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="retail-edge-inventory",
        description="Store inventory API and HQ stock sync. Settings come from a YAML file and "
        f"{inventory_settings.ENV_PREFIX}* environment variables.",
    )
    parser.add_argument("command", choices=("api", "sync"), help="api: serve HTTP; sync: pull the HQ stock feed")
    parser.add_argument("--config", type=Path, help=f"YAML settings file (or ${inventory_settings.ENV_PREFIX}CONFIG)")
    args = parser.parse_args(argv)
    if args.config is not None:
        # The API's worker processes load their settings from the environment again.
        os.environ[f"{inventory_settings.ENV_PREFIX}CONFIG"] = str(args.config)
    try:
        settings = inventory_settings.load()
    except SettingsError as exc:
        print(f"retail-edge-inventory: {exc}", file=sys.stderr)
        return 2
    configure_logging(f"inventory-{args.command}", settings.log_level)
    if args.command == "api":
        run_api(settings)
    else:
        run_sync(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
