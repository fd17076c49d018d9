"""Command line entry point: `retail-edge-vision --config /etc/retail-edge/vision.yml`."""

from __future__ import annotations

import argparse
import logging
import signal
import sys

import uvicorn

from retail_edge.common.logging import configure_logging
from retail_edge.vision.app import create_app
from retail_edge.vision.detectors import DetectorError, build_detector
from retail_edge.vision.service import VisionService
from retail_edge.vision.settings import MQTT_PASSWORD_ENV, SettingsError, load_settings

log = logging.getLogger("retail_edge.vision")

EXIT_CONFIG_ERROR = 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="retail-edge-vision",
        description=(
            "Count people in queue zones and notice shoppers waiting in help zones; publish small JSON events "
            f"over MQTT. The MQTT password comes from {MQTT_PASSWORD_ENV} or mqtt.password_file."
        ),
    )
    parser.add_argument("--config", required=True, help="path of the YAML settings file")
    parser.add_argument(
        "--check",
        action="store_true",
        help="validate the settings and load the detector model, then exit (0: valid, 2: invalid)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging("vision")
    try:
        settings = load_settings(args.config)
        if args.check:
            build_detector(settings.detector)
            print(f"{args.config}: valid, {len(settings.cameras)} camera(s), detector {settings.detector.kind}")
            return 0
        logging.getLogger().setLevel(settings.log_level)
        service = VisionService(settings)
    except (SettingsError, DetectorError) as exc:
        print(f"{args.config}: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR

    service.start()
    app = create_app(service.health, service.metrics.registry)
    server = uvicorn.Server(
        uvicorn.Config(
            app, host=settings.http.host, port=settings.http.port, access_log=False, log_config=None, lifespan="off"
        )
    )
    # uvicorn handles SIGINT and SIGTERM while it runs, then restores these handlers and raises the signal
    # again. Catching that second delivery here lets the pipelines stop and the event buffer drain.
    for handled in (signal.SIGINT, signal.SIGTERM):
        signal.signal(handled, _note_signal)
    try:
        server.run()
    finally:
        service.stop()
    return 0


def _note_signal(signum: int, frame: object) -> None:
    log.info("stop requested", extra={"signal": signal.Signals(signum).name})


if __name__ == "__main__":
    sys.exit(main())
