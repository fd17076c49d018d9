#!/usr/bin/env bash
# Run ansible-test on a copy of this collection at a path that ends in
# ansible_collections/retail/edge, as ansible-test requires.
# Usage: scripts/ansible_test.sh sanity|units [ansible-test options]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RETAIL_EDGE_VENV:-$ROOT/.venv}"
# Outside the checkout: inside an ignored folder of a git work tree,
# ansible-test would treat every file as ignored and skip them all.
COPY="${TMPDIR:-/tmp}/retail-edge-ansible-test-$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)/ansible_collections/retail/edge"

# Copy the files git would commit (tracked, plus untracked ones it does not
# ignore), so caches and virtualenvs never reach the tests.
rm -rf "$COPY"
mkdir -p "$COPY"
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard \
    | xargs -0 -I{} sh -c 'test -e "{}" && printf "%s\0" "{}"' \
    | rsync -a --from0 --files-from=- ./ "$COPY/")

cd "$COPY"
export PATH="$VENV/bin:$PATH"
exec ansible-test "$@" --venv --python 3.11 --color no
