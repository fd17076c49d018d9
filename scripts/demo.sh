#!/usr/bin/env bash
# Bring the embedded lab up and run the main job for the lab store, or take it down.
# Usage: scripts/demo.sh [up|down]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RETAIL_EDGE_VENV:-$ROOT/.venv}"
export PATH="$VENV/bin:$PATH"
export ANSIBLE_CONFIG="$ROOT/ansible.cfg"

case "${1:-up}" in
    up)
        exec "$VENV/bin/python" -m lab.demo up
        ;;
    down)
        exec "$VENV/bin/python" -m lab.demo down
        ;;
    *)
        echo "usage: $0 [up|down]" >&2
        exit 2
        ;;
esac
