"""Command line: `python -m lab.ceph start|stop|purge|status --dir DIR`."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from lab.ceph.cluster import LabCeph, LabCephError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lab.ceph",
        description="Run a single-node lab Ceph cluster (mon, mgr, memstore OSD) on 127.0.0.1 under DIR.",
    )
    parser.add_argument("action", choices=("start", "stop", "purge", "status"))
    parser.add_argument("--dir", required=True, help="directory that holds the cluster's config, keys, data and logs")
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds `start` waits for all PGs to be active+clean"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)

    lab = LabCeph(args.dir)
    try:
        if args.action == "start":
            changed = lab.start(timeout=args.timeout)
            print(json.dumps({"changed": changed, **lab.status()}, indent=2))
        elif args.action == "stop":
            print(json.dumps({"stopped_pids": lab.stop()}))
        elif args.action == "purge":
            lab.purge()
            print(json.dumps({"purged": str(lab.root)}))
        else:
            print(json.dumps(lab.status(), indent=2))
    except LabCephError as exc:
        print(f"lab.ceph {args.action}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
