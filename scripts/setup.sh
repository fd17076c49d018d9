#!/usr/bin/env bash
# Install everything that the lab, the tests and the demo need on a Debian 12
# controller: Debian packages, a virtualenv with pinned Python packages, the
# collections this one depends on, and the offline pip bootstrap that
# ansible-test needs. Safe to rerun: each step checks before it acts.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RETAIL_EDGE_VENV:-$ROOT/.venv}"
ANSIBLE_TEST_PIP_VERSION=24.2

log() { printf '==> %s\n' "$*"; }

install_apt_packages() {
    local wanted missing=()
    mapfile -t wanted < <(grep -v -E '^\s*(#|$)' "$ROOT/requirements/apt.txt")
    for pkg in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        log "Debian packages: all ${#wanted[@]} present"
        return
    fi
    log "Debian packages: installing ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
        echo "error: installing Debian packages needs root; rerun as root or install: ${missing[*]}" >&2
        exit 1
    fi
    apt-get update -q
    # policy-rc.d keeps Debian from starting nginx, varnish, mosquitto and the
    # others on the controller: the lab starts its own instances on its own ports.
    local policy=/usr/sbin/policy-rc.d created_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy"
        chmod 755 "$policy"
        created_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    [ "$created_policy" -eq 1 ] && rm -f "$policy"
    return 0
}

create_venv() {
    # Debian's interpreter with system site-packages: the Ceph binding (rados)
    # exists only for /usr/bin/python3.
    if [ ! -x "$VENV/bin/python" ]; then
        log "virtualenv: creating $VENV"
        /usr/bin/python3 -m venv --system-site-packages "$VENV"
    fi
    local stamp="$VENV/.requirements.sha256"
    local digest
    digest="$(cat "$ROOT/requirements/python.txt" "$ROOT/requirements/constraints.txt" "$ROOT/src/pyproject.toml" | sha256sum | cut -d' ' -f1)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$digest" ]; then
        log "virtualenv: up to date"
        return
    fi
    log "virtualenv: installing Python packages"
    "$VENV/bin/pip" install -q --upgrade pip wheel setuptools
    "$VENV/bin/pip" install -q -r "$ROOT/requirements/python.txt" -c "$ROOT/requirements/constraints.txt"
    "$VENV/bin/pip" install -q --no-deps -e "$ROOT/src"
    echo "$digest" > "$stamp"
}

link_collection() {
    # Ansible finds this checkout as retail.edge through ansible.cfg's collections_path.
    local parent="$ROOT/.build/collections/ansible_collections/retail"
    mkdir -p "$parent"
    ln -sfn "$ROOT" "$parent/edge"
    log "collection: $parent/edge -> $ROOT"
}

prepare_ansible_test() {
    # ansible-test downloads a pip bootstrap script from a host these machines
    # cannot reach; it looks in its cache first, so put one there that
    # installs the pip wheel fetched from PyPI.
    local cache="$HOME/.ansible/test/cache"
    local script="$cache/get_pip_${ANSIBLE_TEST_PIP_VERSION//./_}.py"
    local wheel="$cache/pip-${ANSIBLE_TEST_PIP_VERSION}-py3-none-any.whl"
    mkdir -p "$cache"
    if [ ! -f "$wheel" ]; then
        "$VENV/bin/pip" download -q --no-deps --only-binary=:all: -d "$cache" "pip==${ANSIBLE_TEST_PIP_VERSION}"
    fi
    sed "s|@WHEEL@|$wheel|" "$ROOT/scripts/get_pip_offline.py" > "$script"
    log "ansible-test: offline pip bootstrap at $script"
}

install_apt_packages
create_venv
link_collection
prepare_ansible_test
log "setup finished; run 'make test' or 'make demo'"
