"""Command lines of the POS cache: ``retail-edge-pos`` (the API server) and ``retail-edge-pos-sync`` (the agent).

Both read the same settings (``--config FILE`` or ``RETAIL_EDGE_POS_*`` variables) and open the same database.
Run exactly one agent per database: it takes an exclusive lock next to the database file and exits with status 3
when another agent holds it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from retail_edge.common.logging import configure_logging
from retail_edge.common.settings import SettingsError
from retail_edge.pos.app import create_app
from retail_edge.pos.clients import HqClient, InventoryClient, ServiceUnavailable
from retail_edge.pos.metrics import read_snapshot
from retail_edge.pos.replicas import ReplicaInvalid
from retail_edge.pos.settings import PosSettings, load_pos_settings
from retail_edge.pos.storage import PosStore, StorageError
from retail_edge.pos.sync import SyncAgent

log = logging.getLogger("retail_edge.pos")

EXIT_CONFIG = 2
EXIT_LOCKED = 3
EXIT_SYNC_FAILED = 4


def _common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="YAML settings file (default: $RETAIL_EDGE_POS_CONFIG)")
    parser.add_argument("--db-path", type=Path, help="SQLite database file of the store (overrides the setting)")
    parser.add_argument("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="log level")


def _load(args: argparse.Namespace, **overrides: Any) -> PosSettings:
    try:
        return load_pos_settings(args.config, {"db_path": args.db_path, "log_level": args.log_level, **overrides})
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from exc


def _open_store(settings: PosSettings) -> PosStore:
    try:
        return PosStore(settings.db_path, settings.store_id)
    except StorageError as exc:
        log.error("cannot open the store database", extra={"store_id": settings.store_id, "error": str(exc)})
        raise SystemExit(EXIT_CONFIG) from exc


def serve_main(argv: list[str] | None = None) -> None:
    """Run the POS cache API server until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="retail-edge-pos", description="POS cache API server of one store.")
    _common_arguments(parser)
    parser.add_argument("--host", help="address to listen on (overrides listen_host)")
    parser.add_argument("--port", type=int, help="TCP port to listen on (overrides listen_port)")
    args = parser.parse_args(argv)
    settings = _load(args, listen_host=args.host, listen_port=args.port)
    configure_logging("pos", settings.log_level)

    store = _open_store(settings)
    app = create_app(settings, store)
    config = uvicorn.Config(
        app,
        host=settings.listen_host,
        port=settings.listen_port,
        access_log=False,
        log_config=None,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    log.info(
        "pos cache starting",
        extra={
            "store_id": settings.store_id,
            "db_path": str(settings.db_path),
            "listen": f"{settings.listen_host}:{settings.listen_port}",
            "pid": os.getpid(),
        },
    )
    uvicorn.Server(config).run()
    log.info("pos cache stopped", extra={"store_id": settings.store_id})


@contextlib.contextmanager
def agent_lock(db_path: Path) -> Iterator[IO[str]]:
    """Hold an exclusive flock on ``<db>.sync-lock``; the kernel drops it when the process dies, even by SIGKILL."""
    lock_path = db_path.with_name(db_path.name + ".sync-lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            message = f"error: another sync agent has locked {lock_path}; run one agent per store database"
            print(message, file=sys.stderr)
            raise SystemExit(EXIT_LOCKED) from exc
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield handle


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the agent, which stops both its loops and the server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def status_app(agent: SyncAgent) -> Starlette:
    """Build the agent's small HTTP app: ``/healthz`` and ``/metrics``."""

    async def healthz(request: Request) -> Response:
        snapshot = await agent.db(read_snapshot, agent.store)
        return JSONResponse(
            {
                "status": "ok",
                "store_id": agent.store_id,
                "pid": os.getpid(),
                "pending": snapshot.outbox.pending,
                "oldest_pending_age_seconds": round(snapshot.outbox.oldest_pending_age_seconds, 3),
                "consecutive_failures": int(snapshot.sync_state.get("consecutive_failures", "0")),
                "last_error": snapshot.sync_state.get("last_error"),
            }
        )

    async def metrics(request: Request) -> Response:
        payload = await agent.db(generate_latest, agent.registry)
        return Response(payload, media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[Route("/healthz", healthz), Route("/metrics", metrics)])


async def _run_agent(agent: SyncAgent, settings: PosSettings, once: bool) -> int:
    loop = asyncio.get_running_loop()
    server: _EmbeddedServer | None = None

    def stop() -> None:
        log.info("stop requested", extra={"store_id": settings.store_id})
        agent.stopping.set()
        if server is not None:
            server.should_exit = True

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop)

    try:
        if once:
            try:
                sent = await agent.run_once()
            except (ServiceUnavailable, ReplicaInvalid) as exc:
                log.error("sync pass failed", extra={"store_id": settings.store_id, "error": str(exc)})
                return EXIT_SYNC_FAILED
            log.info("sync pass finished", extra={"store_id": settings.store_id, "sales": sent})
            return 0

        tasks = [agent.run()]
        if settings.sync_listen_port:
            config = uvicorn.Config(
                status_app(agent),
                host=settings.sync_listen_host,
                port=settings.sync_listen_port,
                access_log=False,
                log_config=None,
                server_header=False,
                lifespan="off",
            )
            server = _EmbeddedServer(config)
            tasks.append(server.serve())
        await asyncio.gather(*tasks)
        return 0
    finally:
        await agent.client.aclose()
        if agent.inventory is not None:
            await agent.inventory.aclose()


def sync_main(argv: list[str] | None = None) -> None:
    """Run the sync agent until SIGTERM or SIGINT, or one pass with ``--once``."""
    parser = argparse.ArgumentParser(
        prog="retail-edge-pos-sync", description="Sync agent of a store's POS cache: sales to HQ, replicas from HQ."
    )
    _common_arguments(parser)
    parser.add_argument(
        "--once", action="store_true", help="pull the replicas, push every pending sale, then exit (status 4 on error)"
    )
    args = parser.parse_args(argv)
    settings = _load(args)
    configure_logging("pos-sync", settings.log_level)
    try:
        token = settings.resolve_hq_token()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from exc

    with agent_lock(settings.db_path):
        store = _open_store(settings)
        timeout = settings.sync_request_timeout_seconds
        client = HqClient(settings.hq_base_url, settings.store_id, token, timeout)
        inventory = InventoryClient(settings.inventory_url.rstrip("/"), timeout) if settings.inventory_url else None
        agent = SyncAgent(settings, store, client, inventory=inventory)
        try:
            status = asyncio.run(_run_agent(agent, settings, args.once))
        finally:
            agent.close()
            store.close()
    raise SystemExit(status)
