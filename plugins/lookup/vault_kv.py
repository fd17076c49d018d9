# Copyright: retail.edge maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: vault_kv
short_description: Read a secret, or one field of it, from a Vault or OpenBao KV version 2 engine
version_added: 0.1.0
description:
  - Returns, for each path in the terms, the secret's key/value pairs or the value of O(field).
  - Authenticates once per lookup call with a token or an AppRole, like M(retail.edge.vault_kv),
    and revokes a token obtained by AppRole login before it returns.
  - Reading a version that was deleted or destroyed fails with a message naming the version and
    the newest older version that still has data.
author:
  - retail.edge maintainers (@retail-edge)
extends_documentation_fragment:
  - retail.edge.vault
  - retail.edge.vault.plugins
options:
  _terms:
    description: Paths of secrets below O(mount_point), for example V(stores/s001/pos/db).
    type: list
    elements: str
    required: true
  mount_point:
    description: Path where the KV version 2 engine is mounted.
    type: str
    default: kv
    vars:
      - name: retail_edge_vault_kv_mount_point
  field:
    description:
      - Key to return from each secret. Without it the lookup returns the whole key/value map.
    type: str
  version:
    description:
      - Version to read. Default is the latest.
    type: int
notes:
  - The controller runs the lookup, so the AppRole's C(bound_cidrs) must include the controller.
  - A O(wrapped_secret_id) can be unwrapped only once, so it serves one lookup call (which may read
    several paths). Use a plain O(secret_id) or a token for repeated lookups.
  - Values returned by a lookup are masked in output only where they land in a no_log option. Set
    C(no_log) on tasks that pass them elsewhere.
seealso:
  - module: retail.edge.vault_kv
  - module: retail.edge.vault_env_file
"""

EXAMPLES = r"""
- name: Use the POS database password of store s001 in a no_log task
  ansible.builtin.set_fact:
    pos_db_password: "{{ lookup('retail.edge.vault_kv', 'stores/s001/pos/db', field='password') }}"
  no_log: true

- name: Read the whole secret as version 2, authenticating with an AppRole
  ansible.builtin.set_fact:
    pos_hq: >-
      {{ lookup('retail.edge.vault_kv', 'stores/s001/pos/hq', version=2,
                role_id=pos_role_id, secret_id=pos_secret_id) }}
  no_log: true
"""

RETURN = r"""
_raw:
  description:
    - One element per term, the value of O(field), or the secret's key/value map without O(field).
  type: list
  elements: raw
"""

from ansible.errors import AnsibleLookupError
from ansible.module_utils.basic import missing_required_lib
from ansible.plugins.lookup import LookupBase

from ansible_collections.retail.edge.plugins.module_utils._vault import (
    HAS_HVAC,
    VAULT_ARGUMENT_SPEC,
    VaultConnection,
    VaultError,
    run_with_connection,
    validate_secret_path,
)
from ansible_collections.retail.edge.plugins.module_utils._vault_kv import read_secret


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        if not HAS_HVAC:
            raise AnsibleLookupError(missing_required_lib("hvac"))
        self.set_options(var_options=variables, direct=kwargs)
        options = {name: self.get_option(name) for name in VAULT_ARGUMENT_SPEC}
        if options["secret_id"] and options["wrapped_secret_id"]:
            raise AnsibleLookupError("secret_id and wrapped_secret_id are mutually exclusive; give one of them")
        mount = str(self.get_option("mount_point")).strip("/")
        field = self.get_option("field")
        field = str(field) if field is not None else None
        terms = [str(term) for term in terms]
        version = self.get_option("version")

        def read_all(connection: VaultConnection) -> list:
            return [self._read(connection, mount, path, field, version) for path in terms]

        try:
            for path in terms:
                validate_secret_path(path)
            return run_with_connection(options, read_all)
        except VaultError as exc:
            raise AnsibleLookupError(str(exc)) from None

    @staticmethod
    def _read(connection: VaultConnection, mount: str, path: str, field: str | None, version: int | None):
        secret = read_secret(connection, mount, path, version)
        if secret is None:
            raise VaultError(f"secret {mount}/{path} does not exist; check mount_point and the path")
        if field is None:
            return secret.data
        if field not in secret.data:
            raise VaultError(
                f"secret {mount}/{path} version {secret.version} has no key {field!r}; "
                f"its keys are {sorted(secret.data)}"
            )
        return secret.data[field]
