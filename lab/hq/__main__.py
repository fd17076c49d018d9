"""Command line of the lab HQ: ``python -m lab.hq --host 127.0.0.1 --port N --data-dir DIR``."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from lab.hq.app import OutageSwitch, create_app
from lab.hq.storage import HqStorage
from retail_edge.common.logging import configure_logging

log = logging.getLogger("lab.hq")

DEFAULT_STORE = "store-0001"
DEFAULT_TOKEN = "lab-token"  # noqa: S105 - the documented token of the lab's default store


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lab.hq", description="Lab HQ stock feed and sales ingest.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, required=True, help="TCP port to listen on")
    parser.add_argument("--data-dir", type=Path, required=True, help="directory of hq.sqlite3 and the ready file")
    parser.add_argument("--seed", type=int, default=42, help="random seed of the catalog on first start (default: 42)")
    parser.add_argument("--skus", type=int, default=3000, help="catalog size on first start (default: 3000)")
    parser.add_argument(
        "--token",
        action="append",
        default=[],
        metavar="STORE_ID=TOKEN",
        help=f"bearer token of a store; repeat for more stores (default: {DEFAULT_STORE}={DEFAULT_TOKEN})",
    )
    parser.add_argument(
        "--change-retention",
        type=int,
        default=100_000,
        help="stock changes kept per store; an older cursor gets 410 Gone (default: 100000)",
    )
    parser.add_argument("--log-level", default="INFO", help="log level (default: INFO)")
    return parser.parse_args(argv)


def parse_tokens(pairs: list[str]) -> dict[str, str]:
    tokens: dict[str, str] = {}
    for pair in pairs or [f"{DEFAULT_STORE}={DEFAULT_TOKEN}"]:
        store_id, sep, token = pair.partition("=")
        if not sep or not store_id or not token:
            raise SystemExit(f"error: --token {pair!r} must look like STORE_ID=TOKEN")
        tokens[store_id] = token
    return tokens


def outage_protocol(outage: OutageSwitch) -> type[H11Protocol]:
    """Return an h11 protocol class that resets /v1 connections while the outage switch is in "drop" mode."""

    class OutageH11Protocol(H11Protocol):
        lab_connection: bool | None = None

        def data_received(self, data: bytes) -> None:
            # The first bytes of a connection carry its first request line. Connections to the lab controls stay
            # usable during an outage, so a test can end it.
            if self.lab_connection is None:
                self.lab_connection = b" /_lab/" in data.split(b"\r\n", 1)[0]
            if not self.lab_connection and outage.is_down() and outage.mode == "drop":
                self.transport.abort()
                return
            super().data_received(data)

    return OutageH11Protocol


class ReadyServer(uvicorn.Server):
    """A uvicorn server that writes DIR/ready (JSON: url, pid, stores) once its socket listens."""

    def __init__(self, config: uvicorn.Config, ready_file: Path, ready_info: dict[str, Any]) -> None:
        super().__init__(config)
        self.ready_file = ready_file
        self.ready_info = ready_info

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        if self.started:
            partial = self.ready_file.with_suffix(".tmp")
            partial.write_text(json.dumps(self.ready_info))
            partial.chmod(0o600)
            partial.replace(self.ready_file)
            stores = list(self.ready_info["stores"])
            log.info("lab hq listening", extra={"url": self.ready_info["url"], "stores": stores})


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    configure_logging("lab-hq", args.log_level)
    tokens = parse_tokens(args.token)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    ready_file = args.data_dir / "ready"
    ready_file.unlink(missing_ok=True)

    storage = HqStorage(
        args.data_dir / "hq.sqlite3", seed=args.seed, sku_count=args.skus, change_retention=args.change_retention
    )
    for store_id in tokens:
        storage.ensure_store(store_id)
    outage = OutageSwitch()
    app = create_app(storage, tokens, outage)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        http=outage_protocol(outage),
        access_log=False,
        log_config=None,
        lifespan="off",
    )
    ready_info = {"url": f"http://{args.host}:{args.port}", "pid": os.getpid(), "stores": tokens}
    server = ReadyServer(config, ready_file, ready_info)
    try:
        asyncio.run(server.serve())
    finally:
        ready_file.unlink(missing_ok=True)
        storage.close()


if __name__ == "__main__":
    main()
