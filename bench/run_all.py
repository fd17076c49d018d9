"""Run every benchmark in bench/, keep the raw JSON results and draw one PNG plot per scaling curve.

Each benchmark script already interleaves the runs it compares and repeats them. This runner only calls the
scripts with their own options, once per point of a scaling curve, and collects what they write:

- JSON results go to bench/results/ (not committed), one file per run, with a log of the script's output;
- plots go to docs/benchmarks/ as PNG (committed): provisioning wall time and API calls against the number
  of stores, inventory API latency against the number of SKUs, POS drain time against the queued sales.

A script present in bench/ that this runner does not know is run once with ``--json FILE``.

    /work/venv/bin/python bench/run_all.py                 # everything (about an hour on 2 cores)
    /work/venv/bin/python bench/run_all.py --quick         # no 200-store point, shorter load phases
    /work/venv/bin/python bench/run_all.py --only provision_scale --plots-only
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
PLOTS = ROOT / "docs" / "benchmarks"

STORES = (1, 10, 50, 200)
QUICK_STORES = (1, 10, 50)
SKU_COUNTS = (100, 1_000, 10_000, 100_000)
QUEUED_SALES = (1_000, 5_000, 10_000, 20_000)


@dataclass(frozen=True)
class Job:
    """One call of one benchmark script; ``tag`` names its result file."""

    script: str
    tag: str
    args: tuple[str, ...] = ()
    json_from_stdout: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def result(self) -> Path:
        return RESULTS / f"{self.tag}.json"


def plan(quick: bool) -> list[Job]:
    repeats = "3"
    stores = QUICK_STORES if quick else STORES
    jobs = [
        Job("provision_scale.py", "provision_scale", ("--repeats", repeats, "--stores", *map(str, stores))),
        Job("pve_lxc_noop.py", "pve_lxc_noop", ("--repeats", repeats)),
        Job("pve_double_fleet.py", "pve_double_fleet", ("--stores", "50" if quick else "200"), json_from_stdout=True),
        Job("vision_fps.py", "vision_fps", ("--rounds", repeats, "--frames", "50" if quick else "100")),
    ]
    for skus in SKU_COUNTS:
        jobs.append(
            Job(
                "inventory_latency.py",
                f"inventory_latency-skus{skus}",
                (
                    "--repeats",
                    repeats,
                    "--skus",
                    str(skus),
                    *(("--duration", "3", "--max-duration", "2") if quick else ()),
                ),
                extra={"skus": skus},
            )
        )
    for sales in QUEUED_SALES:
        jobs.append(
            Job(
                "pos_durability.py",
                f"pos_durability-drain{sales}",
                ("--repeats", repeats, "--drain-sales", str(sales), "--transactions", "600" if quick else "3000"),
                extra={"queued_sales": sales},
            )
        )
    known = {job.script for job in jobs} | {Path(__file__).name}
    jobs += [Job(path.name, path.stem) for path in sorted(BENCH.glob("*.py")) if path.name not in known]
    return [job for job in jobs if (BENCH / job.script).exists()]


def run_job(job: Job) -> bool:
    log = RESULTS / f"{job.tag}.log"
    command = [sys.executable, str(BENCH / job.script), *job.args]
    if not job.json_from_stdout:
        command += ["--json", str(job.result)]
    print(f"== {job.tag}: {' '.join(command[1:])}", flush=True)
    started = time.monotonic()
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    log.write_text(f"$ {' '.join(command)}\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    if proc.returncode != 0:
        print(f"   FAILED ({proc.returncode}) after {seconds:.0f} s, see {log.relative_to(ROOT)}", flush=True)
        return False
    if job.json_from_stdout:
        job.result.write_text(proc.stdout)
    data = json.loads(job.result.read_text())
    if isinstance(data, dict):
        data["_run"] = {"command": command[1:], "seconds": seconds, **job.extra}
        job.result.write_text(json.dumps(data, indent=2))
    print(f"   ok in {seconds:.0f} s -> {job.result.relative_to(ROOT)}", flush=True)
    return True


# -- plots -----------------------------------------------------------------------------------------------------


def load(pattern: str) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted(RESULTS.glob(pattern))]


def errorbars(values: list[dict[str, float]]) -> tuple[list[float], list[list[float]]]:
    medians = [v["median"] for v in values]
    return medians, [
        [m - v["min"] for m, v in zip(medians, values, strict=True)],
        [v["max"] - m for m, v in zip(medians, values, strict=True)],
    ]


def spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def plot_provisioning(plt: Any, footer: str) -> list[Path]:
    runs = load("provision_scale.json")
    if not runs:
        return []
    points = sorted(runs[0]["points"], key=lambda point: point["stores"])
    stores = [point["stores"] for point in points]
    written = []
    for metric, label, filename in (
        ("seconds", "wall time of the play (s)", "provision_wall_time.png"),
        ("requests", "PVE API requests per play", "provision_api_calls.png"),
    ):
        fig, axis = plt.subplots(figsize=(7, 4.5))
        for module, colour in (("retail.edge.pve_lxc", "tab:blue"), ("community.proxmox.proxmox", "tab:orange")):
            for phase, style in (("first", "-"), ("noop", "--")):
                medians, err = errorbars([point[module][phase][metric] for point in points])
                axis.errorbar(
                    stores,
                    medians,
                    yerr=err,
                    fmt=f"o{style}",
                    color=colour,
                    capsize=3,
                    label=f"{module}, {'first run' if phase == 'first' else 'no-op rerun'}",
                )
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel(f"stores ({runs[0]['per_store']} container each, in-memory PVE double)")
        axis.set_ylabel(label)
        axis.set_title(f"Provisioning: {label} against stores")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
        written.append(save(fig, axis, filename, footer))
    return written


def plot_inventory(plt: Any, footer: str) -> list[Path]:
    runs = sorted(load("inventory_latency-skus*.json"), key=lambda run: run["_run"]["skus"])
    if not runs:
        return []
    skus = [run["_run"]["skus"] for run in runs]
    fig, axis = plt.subplots(figsize=(7, 4.5))
    for server in runs[0]["results"]:
        for metric, style in (("p50_ms", "-"), ("p99_ms", "--")):
            medians, err = errorbars([spread(run["results"][server][metric]) for run in runs])
            axis.errorbar(skus, medians, yerr=err, fmt=f"o{style}", capsize=3, label=f"{server} {metric[:3]}")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("SKUs in the store's inventory database")
    axis.set_ylabel(f"latency at {runs[0]['args']['rate']:,.0f} req/s (ms)")
    axis.set_title("Inventory API: GET /inventory/{sku} latency against SKUs")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=7, ncol=2)
    return [save(fig, axis, "inventory_latency_vs_skus.png", footer)]


def plot_pos(plt: Any, footer: str) -> list[Path]:
    runs = sorted(load("pos_durability-drain*.json"), key=lambda run: run["_run"]["queued_sales"])
    if not runs:
        return []
    sales = [run["_run"]["queued_sales"] for run in runs]
    fig, axis = plt.subplots(figsize=(7, 4.5))
    for metric, label in (("drain", "drain (first to last batch)"), ("recovery", "recovery (HQ ready to empty queue)")):
        medians, err = errorbars([spread(run[metric]) for run in runs])
        axis.errorbar(sales, medians, yerr=err, fmt="o-", capsize=3, label=label)
    axis.set_xlabel("sales queued while HQ was unreachable")
    axis.set_ylabel("seconds")
    axis.set_title("POS cache: time to sync a backlog to HQ")
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8)
    return [save(fig, axis, "pos_drain_vs_queued_sales.png", footer)]


def save(fig: Any, axis: Any, filename: str, footer: str) -> Path:
    fig.text(0.01, 0.01, footer, fontsize=6, color="grey")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    PLOTS.mkdir(parents=True, exist_ok=True)
    path = PLOTS / filename
    fig.savefig(path, dpi=110, metadata={"Software": None})
    axis.figure.clf()
    return path


def render_plots() -> list[Path]:
    import matplotlib  # noqa: PLC0415 (only needed for the plots)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    footer = (
        f"{dt.date.today().isoformat()}, {platform.platform(terse=True)}, Python {platform.python_version()}; "
        "points: median of interleaved repeats, bars: min to max"
    )
    written = []
    for plot in (plot_provisioning, plot_inventory, plot_pos):
        written += plot(plt, footer)
    plt.close("all")
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument(
        "--quick", action="store_true", help="no 200-store point, shorter load phases (still three repeats)"
    )
    parser.add_argument("--only", nargs="+", metavar="TAG", help="run only jobs whose tag starts with one of these")
    parser.add_argument("--plots-only", action="store_true", help="draw the plots from the results already there")
    parser.add_argument("--list", action="store_true", help="print the jobs and exit")
    args = parser.parse_args()

    jobs = plan(args.quick)
    if args.only:
        jobs = [job for job in jobs if job.tag.startswith(tuple(args.only))]
    if args.list:
        for job in jobs:
            print(f"{job.tag}: bench/{job.script} {' '.join(job.args)}")
        return 0
    RESULTS.mkdir(parents=True, exist_ok=True)
    failed = [] if args.plots_only else [job.tag for job in jobs if not run_job(job)]
    for path in render_plots():
        print(f"plot: {path.relative_to(ROOT)}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
