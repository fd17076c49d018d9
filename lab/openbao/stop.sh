#!/usr/bin/env bash
# Stop the lab OpenBao server by its PID: lab/openbao/stop.sh [DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${RETAIL_EDGE_VENV:-$ROOT/.venv}/bin/python"
DIR="${1:-$ROOT/.lab/openbao}"
cd "$ROOT"
exec "$PYTHON" -m lab.openbao stop --dir "$DIR"
