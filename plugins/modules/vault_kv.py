#!/usr/bin/python
# Copyright: retail.edge maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: vault_kv
short_description: Read, write, patch and delete secrets in a Vault or OpenBao KV version 2 engine
version_added: 0.1.0
description:
  - Manages one secret of a KV version 2 secrets engine on Vault or OpenBao.
  - Every state reads the secret first and writes only what differs, so check mode predicts
    exactly and a rerun with the same data changes nothing.
  - The diff names the keys that change and never shows a value.
author:
  - retail.edge maintainers (@retail-edge)
extends_documentation_fragment:
  - retail.edge.vault
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads the secret and its metadata, then reports what would change without writing.
  diff_mode:
    support: full
    details: Shows key names, custom metadata and version states; secret values are replaced by placeholders.
  platform:
    platforms: posix
options:
  mount_point:
    description:
      - Path where the KV version 2 engine is mounted.
    type: str
    default: kv
  path:
    description:
      - Path of the secret below O(mount_point), for example V(stores/s001/pos/db).
    type: str
    required: true
  state:
    description:
      - V(present) makes the latest version hold exactly O(data); a new version is written only when
        the data differs.
      - V(patched) merges O(data) into the latest version (keys set to V(null) are removed) and creates
        the secret when it does not exist.
      - V(read) returns the data of the latest version or of O(version). It fails, naming the version,
        when that version was deleted or destroyed.
      - V(deleted) soft-deletes O(versions) (default the latest version); V(undeleted) restores them.
      - V(destroyed) removes the data of O(versions) for good.
      - V(absent) deletes the metadata and every version.
    type: str
    choices: [present, patched, read, deleted, undeleted, destroyed, absent]
    default: present
  data:
    description:
      - Key/value pairs to write (V(present)) or merge (V(patched)).
      - With O(state=present) or O(state=patched), give O(data), O(generate) or both.
    type: dict
  generate:
    description:
      - Keys to fill with a new random value that the module generates (Python C(secrets)), so the
        value never passes through Ansible variables, task arguments or logs.
      - With O(overwrite=true) every run writes new values (a rotation); with O(overwrite=false) only
        keys that do not exist yet get one.
      - A key may not appear in both O(data) and O(generate).
    type: list
    elements: str
    default: []
  generate_length:
    description:
      - Length of each generated value, in characters.
    type: int
    default: 40
  generate_charset:
    description:
      - Characters of generated values. V(alphanumeric) is A-Z, a-z and 0-9; V(hex) is 0-9 and a-f.
    type: str
    choices: [alphanumeric, hex]
    default: alphanumeric
  overwrite:
    description:
      - When V(false), existing keys keep their value. With O(state=patched) only missing keys are
        added; with O(state=present) the secret is written only when it does not exist yet.
      - Writes made with V(false) use check-and-set against the version just read, so a concurrent
        writer is never overwritten.
    type: bool
    default: true
  cas:
    description:
      - Check-and-set version for a write. The write succeeds only if the secret's current version
        equals O(cas); V(0) means the secret must not exist yet.
      - Checked only when a write is needed, so a rerun with unchanged data stays V(ok).
    type: int
  version:
    description:
      - Version to read with O(state=read). Default is the latest version.
    type: int
  versions:
    description:
      - Versions for O(state=deleted), O(state=undeleted) and O(state=destroyed).
      - Required for V(undeleted) and V(destroyed). Versions that no longer exist are ignored.
    type: list
    elements: int
  custom_metadata:
    description:
      - Custom metadata of the secret (string keys and values, not secret). Replaces the whole map
        when given.
    type: dict
  max_versions:
    description:
      - Number of versions to keep for this secret; V(0) uses the mount's setting.
    type: int
  cas_required:
    description:
      - Require check-and-set (O(cas)) for every write to this secret.
    type: bool
notes:
  - The task result of O(state=read) contains the secret values. Set C(no_log) on such tasks, or use
    the P(retail.edge.vault_kv#lookup) lookup or M(retail.edge.vault_env_file) instead.
  - Check mode still logs in and reads from Vault; an AppRole login uses up one secret_id use.
seealso:
  - plugin: retail.edge.vault_kv
    plugin_type: lookup
  - module: retail.edge.vault_env_file
"""

EXAMPLES = r"""
- name: Store the POS database password for store s001
  retail.edge.vault_kv:
    url: https://vault.hq.example:8200
    path: stores/s001/pos/db
    data:
      password: "{{ new_password }}"
    custom_metadata:
      owner: pos

- name: Give the secret a random HMAC key unless it already has one
  retail.edge.vault_kv:
    path: stores/s001/pos/hq
    state: patched
    overwrite: false
    generate: [hmac_key]

- name: Rotate the HQ API key (a new random value on every run)
  retail.edge.vault_kv:
    path: stores/s001/pos/hq
    state: patched
    generate: [api_key]

- name: Create the secret only if nobody wrote it since version 3
  retail.edge.vault_kv:
    path: stores/s001/pos/db
    data:
      password: "{{ new_password }}"
    cas: 3

- name: Read version 2 of a secret
  retail.edge.vault_kv:
    path: stores/s001/pos/db
    state: read
    version: 2
  register: pos_db
  no_log: true

- name: Soft-delete the latest version
  retail.edge.vault_kv:
    path: stores/s001/pos/db
    state: deleted
"""

RETURN = r"""
version:
  description:
    - Current version after the task. In check mode, the version a write would create.
    - V(0) when the secret does not exist.
  returned: always
  type: int
  sample: 4
changed_keys:
  description: Keys added, removed or given another value (names only).
  returned: when O(state) is V(present) or V(patched)
  type: list
  elements: str
  sample: [password]
changed_versions:
  description: Versions that were (or in check mode would be) deleted, undeleted or destroyed.
  returned: when O(state) is V(deleted), V(undeleted) or V(destroyed)
  type: list
  elements: int
  sample: [3]
data:
  description: The secret's key/value pairs.
  returned: when O(state=read)
  type: dict
  sample: {password: "..."}
created_time:
  description: Creation time of the returned version (RFC 3339).
  returned: when O(state=read)
  type: str
  sample: "2026-03-01T10:00:00.000000Z"
custom_metadata:
  description: Custom metadata of the secret.
  returned: when O(state) is V(read), V(present) or V(patched)
  type: dict
  sample: {owner: pos}
"""

import secrets
import string

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
from ansible_collections.retail.edge.plugins.module_utils._vault_kv import (
    CasMismatch,
    SecretMetadata,
    SecretVersionUnavailable,
    changed_keys,
    delete_all,
    delete_versions,
    destroy_versions,
    masked_view,
    patch_secret,
    read_metadata,
    read_secret,
    undelete_versions,
    write_metadata,
    write_secret,
)


CHARSETS = {"alphanumeric": string.ascii_letters + string.digits, "hex": "0123456789abcdef"}


def generate_values(keys: list[str], length: int, charset: str) -> dict[str, str]:
    """Return a new random value for each key, drawn with the secrets module."""
    if length < 16:
        raise VaultConfigError(f"generate_length={length} is too short for a secret; use 16 or more characters")
    alphabet = CHARSETS[charset]
    return {key: "".join(secrets.choice(alphabet) for _position in range(length)) for key in keys}


class KvTask:
    """One vault_kv task: read the current state, compute the change, apply it unless in check mode."""

    def __init__(self, module: AnsibleModule, connection: VaultConnection) -> None:
        self.module = module
        self.connection = connection
        self.params = module.params
        self.mount = self.params["mount_point"].strip("/")
        self.path = self.params["path"]
        self.where = f"{self.mount}/{self.path}"

    # -- shared steps ---------------------------------------------------------

    def _metadata(self) -> SecretMetadata | None:
        return read_metadata(self.connection, self.mount, self.path)

    def _latest_data(self) -> dict | None:
        """Return the latest version's data, or None when the secret is missing or its latest version has no data."""
        try:
            secret = read_secret(self.connection, self.mount, self.path)
        except SecretVersionUnavailable:
            return None
        return secret.data if secret else None

    def _check_cas(self, metadata: SecretMetadata | None, cas: int | None) -> None:
        # Vault rejects the write in these cases; failing here makes check mode predict the same.
        # NOTE: cas_required set on the whole mount (kv/config) is not read, so only Vault reports it.
        current = metadata.current_version if metadata else 0
        if cas is None and metadata is not None and metadata.cas_required:
            raise CasMismatch(
                f"{self.where} requires check-and-set (cas_required is set on the secret): pass cas={current}, "
                "its current version"
            )
        if cas is not None and cas != current:
            raise CasMismatch(
                f"check-and-set failed on {self.where}: cas={cas} but the current version is {current} "
                "(cas=0 means the secret must not exist yet). Retry with that cas, or omit cas when "
                "overwriting is safe"
            )

    def _metadata_changes(self, metadata: SecretMetadata | None) -> dict:
        current = metadata or SecretMetadata()
        wanted = {
            "custom_metadata": self.params["custom_metadata"],
            "max_versions": self.params["max_versions"],
            "cas_required": self.params["cas_required"],
        }
        changes = {}
        if wanted["custom_metadata"] is not None:
            # Vault stores custom metadata as strings; compare what it will hold.
            wanted["custom_metadata"] = {str(key): str(item) for key, item in wanted["custom_metadata"].items()}
        for name, value in wanted.items():
            if value is not None and getattr(current, name) != value:
                changes[name] = value
        return changes

    def _diff(self, before: dict | None, after: dict | None, metadata: SecretMetadata | None, meta_changes: dict):
        before_keys, after_keys = masked_view(before, after)
        current = metadata or SecretMetadata()
        before_meta = {"custom_metadata": current.custom_metadata} if metadata else {}
        after_meta = dict(before_meta)
        after_meta.update(meta_changes)
        return {
            "before_header": f"{self.where} (version {current.current_version})",
            "after_header": f"{self.where} (after)",
            "before": {"data": before_keys, **before_meta} if before is not None or metadata else {},
            "after": {"data": after_keys, **after_meta},
        }

    # -- states ---------------------------------------------------------------

    def write(self, patch: bool) -> dict:
        metadata = self._metadata()
        before = self._latest_data()
        data = dict(self.params["data"] or {})
        both = sorted(set(data) & set(self.params["generate"]))
        if both:
            raise VaultConfigError(f"keys {both} are in both data and generate; give each key once")
        data.update(
            generate_values(self.params["generate"], self.params["generate_length"], self.params["generate_charset"])
        )
        cas = self.params["cas"]
        overwrite = self.params["overwrite"]

        if patch and metadata is not None and metadata.current_version > 0 and before is None:
            # The latest version was deleted or destroyed: raise the error that names it.
            read_secret(self.connection, self.mount, self.path)

        if patch:
            # With overwrite=false the current values win over the requested ones.
            after = {**(before or {}), **data} if overwrite else {**data, **(before or {})}
            after = {key: value for key, value in after.items() if value is not None}
        elif overwrite or metadata is None:
            after = data
        else:
            after = before

        if not overwrite and cas is None:
            cas = metadata.current_version if metadata else 0

        keys = changed_keys(before, after)
        write_needed = bool(keys) or (not patch and before is None and after is not None)
        meta_changes = self._metadata_changes(metadata)
        if write_needed:
            self._check_cas(metadata, cas)

        current_version = metadata.current_version if metadata else 0
        version = current_version + 1 if write_needed else current_version
        if write_needed and not self.module.check_mode:
            if patch and before is not None:
                delta = {key: after.get(key) for key in keys}
                written = patch_secret(self.connection, self.mount, self.path, delta, cas)
            else:
                written = write_secret(self.connection, self.mount, self.path, after, cas)
            version = int(written.get("version") or version)
        if meta_changes and not self.module.check_mode:
            write_metadata(self.connection, self.mount, self.path, meta_changes)

        return {
            "changed": write_needed or bool(meta_changes),
            "version": version,
            "changed_keys": keys,
            "custom_metadata": meta_changes.get("custom_metadata", metadata.custom_metadata if metadata else {}),
            "diff": self._diff(before, after, metadata, meta_changes),
        }

    def read(self) -> dict:
        if not self.module.no_log:
            self.module.warn("state=read returns the secret's values: set no_log: true on this task")
        secret = read_secret(self.connection, self.mount, self.path, self.params["version"])
        if secret is None:
            raise VaultError(f"secret {self.where} does not exist; write it first or check mount_point and path")
        return {
            "changed": False,
            "version": secret.version,
            "data": secret.data,
            "created_time": secret.created_time,
            "custom_metadata": secret.custom_metadata,
        }

    def change_versions(self, state: str) -> dict:
        metadata = self._metadata()
        if metadata is None:
            return {"changed": False, "version": 0, "changed_versions": []}
        requested = self.params["versions"] or [metadata.current_version]
        existing = [number for number in sorted(set(requested)) if number in metadata.versions]

        def is_deleted(number: int) -> bool:
            return bool(metadata.versions[number].get("deletion_time"))

        def is_destroyed(number: int) -> bool:
            return bool(metadata.versions[number].get("destroyed"))

        if state == "deleted":
            todo = [number for number in existing if not is_deleted(number) and not is_destroyed(number)]
            action, label = delete_versions, "deleted"
        elif state == "undeleted":
            todo = [number for number in existing if is_deleted(number) and not is_destroyed(number)]
            action, label = undelete_versions, "active"
        else:
            todo = [number for number in existing if not is_destroyed(number)]
            action, label = destroy_versions, "destroyed"

        def describe(number: int) -> str:
            if is_destroyed(number):
                return "destroyed"
            return "deleted" if is_deleted(number) else "active"

        before = {str(number): describe(number) for number in existing}
        after = dict(before)
        after.update({str(number): label for number in todo})
        if todo and not self.module.check_mode:
            action(self.connection, self.mount, self.path, todo)
        return {
            "changed": bool(todo),
            "version": metadata.current_version,
            "changed_versions": todo,
            "diff": {"before_header": self.where, "after_header": self.where, "before": before, "after": after},
        }

    def absent(self) -> dict:
        metadata = self._metadata()
        if metadata is None:
            return {"changed": False, "version": 0}
        if not self.module.check_mode:
            delete_all(self.connection, self.mount, self.path)
        versions = {str(number): "present" for number in sorted(metadata.versions)}
        return {
            "changed": True,
            "version": 0,
            "diff": {"before_header": self.where, "after_header": self.where, "before": versions, "after": {}},
        }

    def run(self) -> dict:
        state = self.params["state"]
        if state in ("present", "patched"):
            return self.write(patch=state == "patched")
        if state == "read":
            return self.read()
        if state == "absent":
            return self.absent()
        return self.change_versions(state)


def main() -> None:
    module = AnsibleModule(
        argument_spec=vault_argument_spec(
            mount_point={"type": "str", "default": "kv"},
            path={"type": "str", "required": True},
            state={
                "type": "str",
                "default": "present",
                "choices": ["present", "patched", "read", "deleted", "undeleted", "destroyed", "absent"],
            },
            data={"type": "dict", "no_log": True},
            generate={"type": "list", "elements": "str", "default": [], "no_log": False},
            generate_length={"type": "int", "default": 40},
            generate_charset={"type": "str", "default": "alphanumeric", "choices": ["alphanumeric", "hex"]},
            overwrite={"type": "bool", "default": True},
            cas={"type": "int"},
            version={"type": "int"},
            versions={"type": "list", "elements": "int"},
            custom_metadata={"type": "dict"},
            max_versions={"type": "int"},
            cas_required={"type": "bool"},
        ),
        mutually_exclusive=VAULT_MUTUALLY_EXCLUSIVE,
        required_if=[
            ("state", "present", ["data", "generate"], True),
            ("state", "patched", ["data", "generate"], True),
            ("state", "undeleted", ["versions"]),
            ("state", "destroyed", ["versions"]),
        ],
        supports_check_mode=True,
    )
    if not HAS_HVAC:
        module.fail_json(msg=missing_required_lib("hvac"), exception=HVAC_IMPORT_ERROR)

    try:
        validate_secret_path(module.params["path"])
        result = run_with_connection(vault_options(module.params), lambda connection: KvTask(module, connection).run())
    except VaultError as exc:
        module.fail_json(msg=str(exc))

    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
