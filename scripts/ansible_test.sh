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

# The Python outside the Ansible content (the workload services, the lab, the
# benchmarks and the pytest suites that drive them) follows ruff's rules, not
# the pylint profile that ansible-test applies to collection plugins.
# tests/conftest.py goes too: it loads the tests/fixtures_* plugins left out
# here, and `ansible-test units` would fail importing them.
NOT_ANSIBLE_CONTENT='^(src|lab|bench)/|^molecule/[^/]+/tests/|^tests/(lab|services|e2e|molecule|compliance|fleet|faults)/|^tests/fixtures_|^tests/conftest\.py$'

# Copy the files git would commit (tracked, plus untracked ones it does not
# ignore), so caches and virtualenvs never reach the tests.
rm -rf "$COPY"
mkdir -p "$COPY"
(cd "$ROOT" && git ls-files --cached --others --exclude-standard \
    | grep -Ev "$NOT_ANSIBLE_CONTENT" \
    | while IFS= read -r path; do [ -e "$path" ] && printf '%s\0' "$path"; done \
    | rsync -a --from0 --files-from=- ./ "$COPY/")

cd "$COPY"
export PATH="$VENV/bin:$PATH"
exec ansible-test "$@" --venv --python 3.11 --color no
