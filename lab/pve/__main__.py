"""Command line of the PVE double: `python -m lab.pve serve --config CONFIG.yml --state-dir DIR [--port N]`."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from lab.pve.app import PveApp
from lab.pve.config import ConfigError, load_config
from lab.pve.server import PveHttpServer
from lab.pve.state import StateStore
from lab.pve.tls import ensure_certificates

LOG = logging.getLogger("lab.pve")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def serve(config_path: Path, state_dir: Path, port: int) -> int:
    try:
        config = load_config(config_path)
    except (ConfigError, OSError) as exc:
        LOG.error("invalid lab configuration %s: %s", config_path, exc)
        return 2

    state_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("ready", "port"):
        (state_dir / stale).unlink(missing_ok=True)
    _write_atomic(state_dir / "pid", f"{os.getpid()}\n")

    ca_path, cert_path, key_path = ensure_certificates(state_dir, config.nodes)
    store = StateStore(state_dir / "state.json", config.persist_interval_s)
    app = PveApp(config, store)
    server = PveHttpServer(app, port, cert_path, key_path)
    bound_port = server.server_address[1]

    def stop(signum: int, frame: object) -> None:
        del frame
        LOG.info("received signal %d, stopping", signum)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    _write_atomic(state_dir / "port", f"{bound_port}\n")
    _write_atomic(state_dir / "ready", f"https://127.0.0.1:{bound_port}/api2/json\n")
    LOG.info(
        "PVE double listening on https://127.0.0.1:%d (nodes %s, backend %s, CA %s)",
        bound_port,
        ",".join(config.nodes),
        config.backend,
        ca_path,
    )
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        (state_dir / "ready").unlink(missing_ok=True)
        server.server_close()
        app.shutdown()
        LOG.info("PVE double stopped, state written to %s", store.path)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.pve", description="Proxmox VE API double for the lab")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="serve the PVE API over HTTPS on 127.0.0.1")
    serve_parser.add_argument("--config", type=Path, required=True, help="lab configuration (YAML)")
    serve_parser.add_argument("--state-dir", type=Path, required=True, help="directory for state, CA, port, ready")
    serve_parser.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one (default)")
    serve_parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return serve(args.config, args.state_dir, args.port)


if __name__ == "__main__":
    sys.exit(main())
