"""Command line of the LXC lab: python -m lab.lxc {up,down,status,create,destroy,ssh,measure}."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

from . import LabError, LabSettings, containers, ensure_lab, instances, lab_status, teardown, wheelhouse


def _print_json(value: object) -> None:
    json.dump(value, sys.stdout, indent=2)
    sys.stdout.write("\n")


def cmd_up(settings: LabSettings, args: argparse.Namespace) -> None:
    started = time.monotonic()
    ensure_lab(settings, with_wheelhouse=not args.no_wheelhouse)
    logging.getLogger("lab.lxc").info("lab ready in %.1f s (%s)", time.monotonic() - started, settings.lab_dir)


def cmd_down(settings: LabSettings, args: argparse.Namespace) -> None:
    teardown(settings, keep_images=args.keep_images)


def cmd_status(settings: LabSettings, _args: argparse.Namespace) -> None:
    _print_json(asdict(lab_status(settings)))


def cmd_create(settings: LabSettings, args: argparse.Namespace) -> None:
    ensure_lab(settings, with_wheelhouse=False)
    _print_json([instances.create(settings, name).instance_config() for name in args.names])


def cmd_destroy(settings: LabSettings, args: argparse.Namespace) -> None:
    for name in args.names:
        instances.destroy(settings, name)


def cmd_ssh(settings: LabSettings, args: argparse.Namespace) -> None:
    address = instances.lease_address(settings, args.name) if containers.exists(settings, args.name) else None
    if address is None:
        raise LabError(f"no lab instance named {args.name}; create it with 'python -m lab.lxc create {args.name}'")
    argv = [
        "ssh",
        "-i",
        str(settings.ssh_key),
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        f"{settings.admin_user}@{address}",
        *args.command,
    ]
    os.execvp("ssh", argv)  # noqa: S606 - hands the terminal to ssh on purpose


def cmd_wheelhouse(settings: LabSettings, args: argparse.Namespace) -> None:
    extra_sets = {}
    for pair in args.set:
        name, sep, requirement = pair.partition("=")
        if not sep or not name or not requirement:
            raise LabError(f"--set {pair!r} must look like NAME=REQUIREMENT, such as onnxruntime-gpu=onnxruntime-gpu")
        extra_sets[name] = requirement
    manifest = wheelhouse.build_wheelhouse(settings.repo_root, args.output.resolve(), extra_sets)
    _print_json({name: entry["requirement"] for name, entry in manifest["sets"].items()})  # type: ignore[attr-defined]


def cmd_measure(settings: LabSettings, args: argparse.Namespace) -> None:
    """Time a golden build (from the debootstrap cache unless --cold) and clone-to-SSH of N instances."""
    result: dict[str, object] = {}
    ensure_lab(settings, with_wheelhouse=False)
    if args.rebuild_golden:
        containers.destroy(settings, settings.golden_name)
        if args.cold:
            shutil.rmtree(settings.debootstrap_cache, ignore_errors=True)
        started = time.monotonic()
        ensure_lab(settings, with_wheelhouse=False)
        result["golden_build_s"] = round(time.monotonic() - started, 1)
    clone_times = []
    names = [f"lxcroles-measure-{index}" for index in range(args.count)]
    try:
        for name in names:
            started = time.monotonic()
            instances.create(settings, name)
            clone_times.append(round(time.monotonic() - started, 2))
        result["clone_to_ssh_s"] = clone_times
        result["idle_rss_mib"] = {name: _container_rss_mib(name) for name in names}
    finally:
        for name in names:
            instances.destroy(settings, name)
    _print_json(result)


def _container_rss_mib(name: str) -> float | None:
    """Return the container's resident memory (total_rss of its cgroup v1 memory controller) in MiB."""
    stat = f"/sys/fs/cgroup/memory/lxc.payload.{name}/memory.stat"
    try:
        with open(stat) as handle:
            values = dict(line.split() for line in handle)
    except OSError:
        return None
    return round(int(values["total_rss"]) / 2**20, 1)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lab.lxc", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log every command the lab runs")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="create bridge, apt proxy, golden container and wheelhouse (idempotent)")
    up.add_argument("--no-wheelhouse", action="store_true", help="skip building the services' wheelhouse")
    up.set_defaults(func=cmd_up)

    down = sub.add_parser("down", help="remove instances, proxy, bridge and the lab directory")
    down.add_argument(
        "--keep-images",
        action="store_true",
        help="keep the golden container, caches and wheelhouse for a fast next 'up'",
    )
    down.set_defaults(func=cmd_down)

    sub.add_parser("status", help="print what exists, as JSON").set_defaults(func=cmd_status)

    create = sub.add_parser("create", help="clone and start instances; print their SSH details as JSON")
    create.add_argument("names", nargs="+", metavar="NAME")
    create.set_defaults(func=cmd_create)

    destroy = sub.add_parser("destroy", help="stop and delete instances and release their addresses")
    destroy.add_argument("names", nargs="+", metavar="NAME")
    destroy.set_defaults(func=cmd_destroy)

    ssh = sub.add_parser("ssh", help="open an SSH session (or run a command) on an instance as the admin user")
    ssh.add_argument("name")
    ssh.add_argument("command", nargs=argparse.REMAINDER)
    ssh.set_defaults(func=cmd_ssh)

    wheels = sub.add_parser(
        "wheelhouse", help="build a wheelhouse with its manifest into a directory of its own (for stores)"
    )
    wheels.add_argument("--output", type=Path, required=True, help="directory to (re)create")
    wheels.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=REQUIREMENT",
        help="add a wheel set besides the package's extras, such as onnxruntime-gpu=onnxruntime-gpu; repeatable",
    )
    wheels.set_defaults(func=cmd_wheelhouse)

    measure = sub.add_parser("measure", help="time golden build and clone-to-SSH; print JSON")
    measure.add_argument("--count", type=int, default=3, help="instances to clone (default 3)")
    measure.add_argument("--rebuild-golden", action="store_true", help="also time a golden rebuild")
    measure.add_argument("--cold", action="store_true", help="with --rebuild-golden: drop the debootstrap cache")
    measure.set_defaults(func=cmd_measure)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr
    )
    try:
        args.func(LabSettings.from_env(), args)
    except LabError as exc:
        logging.getLogger("lab.lxc").error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
