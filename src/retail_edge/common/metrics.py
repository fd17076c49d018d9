"""Prometheus glue shared by the services: one registry per process, multiprocess-aware exposition."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Request latency buckets in seconds, fine below a millisecond where a local API responds.
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


def prepare_multiprocess_dir(path: Path) -> None:
    """Empty ``path`` and point prometheus_client at it; call before forking worker processes."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(path)


def exposition(process_registry: CollectorRegistry, live_registry: CollectorRegistry) -> bytes:
    """Render request metrics and the collectors in ``live_registry``.

    Request metrics come from ``process_registry``, or, in multiprocess mode, from the files of all worker
    processes. ``live_registry`` contains collectors that read current state at scrape time (such as gauges computed
    from the database), so every worker reports the same values and none is summed across processes.
    """
    if os.environ.get(MULTIPROC_ENV):
        merged = CollectorRegistry()
        MultiProcessCollector(merged)
        return generate_latest(merged) + generate_latest(live_registry)
    return generate_latest(process_registry) + generate_latest(live_registry)
