"""Command line: python -m lab.openbao start|stop|status|seal|unseal|env --dir DIR [--port N].

`env` prints shell exports for VAULT_ADDR, VAULT_CACERT and VAULT_TOKEN; the token is read from
its file when the line is evaluated, so it never appears in the output.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import asdict

from lab.openbao.server import OpenBaoLab, OpenBaoLabError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.openbao", description=__doc__)
    parser.add_argument("command", choices=["start", "stop", "status", "seal", "unseal", "env"])
    parser.add_argument("--dir", required=True, help="lab directory that holds storage, TLS files and keys")
    parser.add_argument("--port", type=int, help="TCP port on 127.0.0.1 (default: the last one used, else a free one)")
    args = parser.parse_args(argv)

    lab = OpenBaoLab(args.dir, port=args.port)
    try:
        if args.command == "start":
            state = asdict(lab.start())
            print(json.dumps(state, indent=2))
        elif args.command == "stop":
            stopped = lab.stop()
            print(json.dumps({"stopped": stopped, "directory": str(lab.directory)}))
        elif args.command == "status":
            status = lab.status()
            print(json.dumps(status, indent=2))
            return 0 if status["running"] else 3
        elif args.command == "env":
            status = lab.status()
            if not status["running"]:
                raise OpenBaoLabError(f"no lab server runs in {lab.directory}; start it first")
            print(
                f"export VAULT_ADDR={shlex.quote(status['url'])} VAULT_CACERT={shlex.quote(status['ca_file'])} "
                f'VAULT_TOKEN="$(cat {shlex.quote(str(lab.root_token_file))})"'
            )
        elif args.command == "seal":
            lab.seal()
            print(json.dumps(lab.status(), indent=2))
        else:
            lab.unseal()
            print(json.dumps(lab.status(), indent=2))
    except OpenBaoLabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
