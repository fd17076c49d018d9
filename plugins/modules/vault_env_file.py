#!/usr/bin/python
# Copyright: retail.edge maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: vault_env_file
short_description: Render secrets from a Vault or OpenBao KV version 2 engine into an environment file
version_added: 0.1.0
description:
  - Logs in to Vault once, reads the listed secret fields and writes them as C(NAME=value) lines to
    O(dest) on the host the module runs on, so the values go from Vault to the workload's host
    without passing through the controller or any task result. The retail.edge.workload_secrets
    role wraps it with credential issuing and a restart handler.
  - The file is written only when a value changed; the result and the diff name the variables that
    changed, never their values.
  - The file is complete with its final owner, group and mode before it replaces the old one, so no
    other user can read it at any moment.
  - The format is read by systemd C(EnvironmentFile=) and by POSIX shells. Values made of letters,
    digits and C(_@%+=:,./-) are written bare; others are double-quoted with C(\\), C("), C($) and
    C(`) escaped.
author:
  - retail.edge maintainers (@retail-edge)
extends_documentation_fragment:
  - retail.edge.vault
  - ansible.builtin.files
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads Vault and the current file and reports what would change without writing.
  diff_mode:
    support: full
    details: Shows variable names; values are replaced by placeholders.
  platform:
    platforms: posix
options:
  dest:
    description:
      - Path of the environment file. Its directory must exist.
    type: path
    required: true
  mount_point:
    description:
      - Path where the KV version 2 engine is mounted.
    type: str
    default: kv
  path_prefix:
    description:
      - Path put in front of every O(env[].path), for example V(stores/s001/pos).
    type: str
    default: ""
  env:
    description:
      - Variables to write, in this order.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - Name of the environment variable.
        type: str
        required: true
      path:
        description:
          - Path of the secret below O(mount_point), after O(path_prefix).
        type: str
        required: true
      field:
        description:
          - Key inside the secret.
        type: str
        required: true
      version:
        description:
          - Version of the secret to read. Default is the latest.
        type: int
notes:
  - When O(mode) is not set the file gets V(0600), so a forgotten O(mode) never exposes secrets.
  - Runs where the task runs. The Python library hvac must be installed there and the Vault
    address reachable from there, which is what an AppRole with C(bound_cidrs) on that host expects.
seealso:
  - module: retail.edge.vault_store_access
  - module: retail.edge.vault_kv
"""

EXAMPLES = r"""
- name: Write the POS secrets for its systemd unit
  retail.edge.vault_env_file:
    url: https://vault.hq.example:8200
    ca_cert: /etc/ssl/certs/retail-edge-vault-ca.pem
    role_id: "{{ pos_credentials.role_id }}"
    wrapped_secret_id: "{{ pos_credentials.wrapped_secret_id }}"
    dest: /etc/retail-edge/pos/secrets.env
    owner: root
    group: pos
    mode: "0640"
    env:
      - name: POS_DB_PASSWORD
        path: stores/s001/pos/db
        field: password
      - name: POS_HQ_API_KEY
        path: stores/s001/pos/hq
        field: api_key
  notify: Restart pos
"""

RETURN = r"""
dest:
  description: Path of the environment file.
  returned: always
  type: str
  sample: /etc/retail-edge/pos/secrets.env
changed_keys:
  description: Variables added, removed or given another value (names only).
  returned: always
  type: list
  elements: str
  sample: [POS_DB_PASSWORD]
versions:
  description: Secret version each variable was read from.
  returned: always
  type: dict
  sample: {POS_DB_PASSWORD: 3}
"""

import os
import re
import tempfile

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.retail.edge.plugins.module_utils._vault import (
    HAS_HVAC,
    HVAC_IMPORT_ERROR,
    VAULT_MUTUALLY_EXCLUSIVE,
    VaultConfigError,
    VaultConnection,
    VaultError,
    run_with_connection,
    validate_secret_path,
    vault_argument_spec,
    vault_options,
)
from ansible_collections.retail.edge.plugins.module_utils._vault_kv import changed_keys, masked_view, read_secret

HEADER = "# Managed by retail.edge.vault_env_file from Vault; local edits are overwritten.\n"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
BARE_VALUE = re.compile(r"^[A-Za-z0-9_@%+=:,./-]*$")
ESCAPED = re.compile(r'\\(["\\$`])')


def quote(value: str) -> str:
    if BARE_VALUE.match(value):
        return value
    escaped = re.sub(r'(["\\$`])', r"\\\1", value)
    return f'"{escaped}"'


def render(values: dict[str, str]) -> str:
    return HEADER + "".join(f"{name}={quote(value)}\n" for name, value in values.items())


def parse(content: str) -> dict[str, str]:
    """Read back a file written by render(); lines in other formats are kept as raw text."""
    values = {}
    for line in content.splitlines():
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, raw = line.split("=", 1)
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            raw = ESCAPED.sub(r"\1", raw[1:-1])
        values[name.strip()] = raw
    return values


def check_entries(entries: list[dict]) -> None:
    seen = set()
    for entry in entries:
        name = entry["name"]
        if not ENV_NAME.match(name):
            raise VaultConfigError(f"env name {name!r} is not a valid variable name; use letters, digits and '_'")
        if name in seen:
            raise VaultConfigError(f"env name {name!r} appears twice; give each variable once")
        seen.add(name)
        validate_secret_path(entry["path"], f"path of {name}")


def fetch(connection: VaultConnection, mount: str, entries: list[dict]) -> tuple[dict[str, str], dict[str, int]]:
    """Read every listed field, each secret version once; return (values, versions) keyed by variable name."""
    secrets = {}
    values, versions = {}, {}
    for entry in entries:
        name, path, field, version = entry["name"], entry["path"], entry["field"], entry.get("version")
        key = (path, version)
        if key not in secrets:
            secret = read_secret(connection, mount, path, version)
            if secret is None:
                raise VaultError(f"secret {mount}/{path} (for {name}) does not exist")
            secrets[key] = secret
        secret = secrets[key]
        if field not in secret.data:
            raise VaultError(
                f"secret {mount}/{path} version {secret.version} has no key {field!r} (for {name}); "
                f"its keys are {sorted(secret.data)}"
            )
        value = secret.data[field]
        if isinstance(value, (dict, list)) or value is None:
            raise VaultError(f"{mount}/{path} key {field!r} (for {name}) is not a string or number")
        value = str(value).lower() if isinstance(value, bool) else str(value)
        if "\n" in value or "\r" in value or "\0" in value:
            raise VaultError(
                f"{mount}/{path} key {field!r} (for {name}) contains a line break or NUL, which an "
                "environment file cannot hold"
            )
        values[name] = value
        versions[name] = secret.version
    return values, versions


def write_file(module: AnsibleModule, dest: str, content: str, file_args: dict) -> None:
    """Write content next to dest, give it the final owner, group and mode, then rename it over dest."""
    directory = os.path.dirname(dest) or "."
    fd, tmp = tempfile.mkstemp(prefix=".vault_env_file.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        tmp_args = dict(file_args, path=tmp)
        module.set_fs_attributes_if_different(tmp_args, False)
        os.replace(tmp, dest)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main() -> None:
    module = AnsibleModule(
        argument_spec=vault_argument_spec(
            dest={"type": "path", "required": True},
            mount_point={"type": "str", "default": "kv"},
            path_prefix={"type": "str", "default": ""},
            env={
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": {
                    "name": {"type": "str", "required": True},
                    "path": {"type": "str", "required": True},
                    "field": {"type": "str", "required": True},
                    "version": {"type": "int"},
                },
            },
        ),
        mutually_exclusive=VAULT_MUTUALLY_EXCLUSIVE,
        add_file_common_args=True,
        supports_check_mode=True,
    )
    if not HAS_HVAC:
        module.fail_json(msg=missing_required_lib("hvac"), exception=HVAC_IMPORT_ERROR)

    dest = module.params["dest"]
    mount = module.params["mount_point"].strip("/")
    prefix = module.params["path_prefix"].strip("/")
    entries = [
        dict(entry, path=f"{prefix}/{entry['path']}" if prefix else entry["path"]) for entry in module.params["env"]
    ]
    if module.params["mode"] is None:
        module.params["mode"] = "0600"
    if not os.path.isdir(os.path.dirname(dest) or "."):
        module.fail_json(msg=f"directory of dest={dest} does not exist; create it before writing the file")

    try:
        check_entries(entries)
    except VaultError as exc:
        module.fail_json(msg=str(exc))
    try:
        values, versions = run_with_connection(
            vault_options(module.params), lambda connection: fetch(connection, mount, entries)
        )
    except VaultError as exc:
        # Every value is read before dest is touched, so a failed read leaves the old file in place.
        folder = f"{mount}/{prefix}" if prefix else mount
        module.fail_json(msg=f"reading the secrets for {dest} from {folder} failed, so {dest} was not changed: {exc}")

    content = render(values)
    exists = os.path.exists(dest)
    current = ""
    if exists:
        with open(dest, encoding="utf-8", errors="replace") as handle:
            current = handle.read()
    before = parse(current) if exists else None
    keys = changed_keys(before, values)
    content_changed = current != content or not exists

    file_args = module.load_file_common_arguments(module.params, path=dest)
    if content_changed and not module.check_mode:
        write_file(module, dest, content, file_args)
    changed = content_changed
    if exists or not module.check_mode:
        changed = module.set_fs_attributes_if_different(file_args, changed)

    # Ansible masks only values that arrived as no_log options. These come from Vault, so the
    # result carries names and versions only.
    before_view, after_view = masked_view(before, values)
    result = {"changed": changed, "dest": dest, "changed_keys": keys, "versions": versions}
    if module._diff:
        result["diff"] = {"before_header": dest, "after_header": dest, "before": before_view, "after": after_view}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
