#!/usr/bin/env bash
# Start the lab OpenBao server (idempotent): lab/openbao/start.sh [DIR] [PORT]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${RETAIL_EDGE_VENV:-$ROOT/.venv}/bin/python"
DIR="${1:-$ROOT/.lab/openbao}"
cd "$ROOT"
exec "$PYTHON" -m lab.openbao start --dir "$DIR" ${2:+--port "$2"}
