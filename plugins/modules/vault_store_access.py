#!/usr/bin/python
# Copyright: retail.edge maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: vault_store_access
short_description: Give one workload of one store read access to its own secrets through an AppRole
version_added: 0.1.0
description:
  - Manages, for one store and one workload, an ACL policy that allows only reading
    C(<mount_point>/data/<secrets_prefix>/<store_id>/<workload>/*) (and the metadata of those
    secrets), and an AppRole whose tokens carry only that policy.
  - With O(state=issued) it issues a new secret_id for the existing AppRole, plain or
    response-wrapped, and changes nothing else.
  - Reads before it writes, so check mode predicts exactly and reruns change nothing.
author:
  - retail.edge maintainers (@retail-edge)
extends_documentation_fragment:
  - retail.edge.vault
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: With O(state=issued), check mode reports a change and issues nothing.
  diff_mode:
    support: full
    details: Shows the policy text and the AppRole settings; an issued secret_id is never part of the diff.
  platform:
    platforms: posix
options:
  store_id:
    description:
      - Store identifier, one path segment (for example V(s001)).
    type: str
    required: true
  workload:
    description:
      - Workload name, one path segment (for example V(pos)).
    type: str
    required: true
  state:
    description:
      - V(present) creates or updates the policy and the AppRole.
      - V(absent) deletes both (secret_ids of the AppRole stop working).
      - V(issued) issues a secret_id for the existing AppRole; combine with O(wrap_ttl) to get a
        response-wrapping token instead of the secret_id itself.
    type: str
    choices: [present, absent, issued]
    default: present
  mount_point:
    description:
      - Path where the KV version 2 engine holding the store secrets is mounted.
    type: str
    default: kv
  secrets_prefix:
    description:
      - Path below O(mount_point) under which each store has its own folder.
    type: str
    default: stores
  policy_name:
    description:
      - Name of the ACL policy. Default is C(store-<store_id>-<workload>).
    type: str
  role_name:
    description:
      - Name of the AppRole. Default is C(store-<store_id>-<workload>).
    type: str
  secret_id_ttl:
    description:
      - Lifetime of a secret_id, as seconds or a duration such as V(10m) or V(24h). V(0) means no expiry.
    type: str
    default: 10m
  secret_id_num_uses:
    description:
      - Number of logins one secret_id allows. V(0) means unlimited.
    type: int
    default: 1
  token_ttl:
    description:
      - Lifetime of a token obtained by login, as seconds or a duration.
    type: str
    default: 5m
  token_max_ttl:
    description:
      - Maximum lifetime of such a token including renewals, as seconds or a duration.
    type: str
    default: 15m
  bound_cidrs:
    description:
      - Addresses or networks allowed to log in with a secret_id and to use the resulting token,
        typically the workload container's address. An address without prefix length means V(/32)
        (V(/128) for IPv6).
      - Empty means no binding.
    type: list
    elements: str
    default: []
  wrap_ttl:
    description:
      - With O(state=issued), wrap the secret_id in a response-wrapping token with this lifetime
        (seconds or a duration). The token can be unwrapped once, for example by
        O(retail.edge.vault_kv#module:wrapped_secret_id).
    type: str
  secret_id_metadata:
    description:
      - With O(state=issued), key/value pairs stored with the secret_id and copied into the token's
        metadata and the audit log (for example the deploy job that asked for it).
    type: dict
notes:
  - With O(state=issued) the result holds a secret_id or a wrapping token. Set C(no_log) on that task.
    The module warns when it is not set.
  - The token needs C(read), C(create), C(update) and C(delete) on C(sys/policies/acl/store-*) and
    C(auth/<approle_mount_point>/role/store-*) for V(present) and V(absent), and C(update) on
    C(auth/<approle_mount_point>/role/store-*/secret-id) plus C(read) on C(.../role-id) for V(issued).
"""

EXAMPLES = r"""
- name: Let the POS of store s001 read its secrets from its container address only
  retail.edge.vault_store_access:
    store_id: s001
    workload: pos
    bound_cidrs: [198.51.100.21]
    secret_id_ttl: 10m
    secret_id_num_uses: 1
    token_ttl: 5m

- name: Issue a wrapped secret_id for the deploy of the POS
  retail.edge.vault_store_access:
    store_id: s001
    workload: pos
    state: issued
    wrap_ttl: 2m
    secret_id_metadata:
      deployed_by: awx
  register: pos_credentials
  delegate_to: localhost
  no_log: true
"""

RETURN = r"""
policy_name:
  description: Name of the ACL policy.
  returned: always
  type: str
  sample: store-s001-pos
role_name:
  description: Name of the AppRole.
  returned: always
  type: str
  sample: store-s001-pos
policy:
  description: Text of the ACL policy (HCL).
  returned: when O(state=present)
  type: str
  sample: 'path "kv/data/stores/s001/pos/*" { capabilities = ["read"] }'
role_id:
  description: The AppRole's role_id. Not returned in check mode when the AppRole does not exist yet.
  returned: when O(state) is V(present) or V(issued)
  type: str
  sample: 0bc4da01-d6b7-bd54-1655-c46f0d9ae1b1
secret_id:
  description: The issued secret_id.
  returned: when O(state=issued) without O(wrap_ttl), not in check mode
  type: str
secret_id_accessor:
  description: Accessor of the issued secret_id (to look it up or revoke it without knowing it).
  returned: when O(state=issued) without O(wrap_ttl), not in check mode
  type: str
wrapped_secret_id:
  description:
    - Response-wrapping token that holds the issued secret_id.
    - Pass it as O(retail.edge.vault_kv#module:wrapped_secret_id).
  returned: when O(state=issued) with O(wrap_ttl), not in check mode
  type: str
wrapping_accessor:
  description: Accessor of the wrapping token.
  returned: when O(state=issued) with O(wrap_ttl), not in check mode
  type: str
"""

import ipaddress
import json

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.retail.edge.plugins.module_utils._vault import (
    HAS_HVAC,
    HVAC_IMPORT_ERROR,
    VAULT_MUTUALLY_EXCLUSIVE,
    VaultConfigError,
    VaultConnection,
    VaultError,
    VaultNotFound,
    parse_duration,
    run_with_connection,
    validate_name,
    validate_secret_path,
    vault_argument_spec,
    vault_options,
)

# AppRole fields this module owns; any other field of the role is left as Vault has it.
MANAGED_ROLE_FIELDS = (
    "token_policies",
    "secret_id_ttl",
    "secret_id_num_uses",
    "token_ttl",
    "token_max_ttl",
    "secret_id_bound_cidrs",
    "token_bound_cidrs",
    "bind_secret_id",
)


def normalize_cidrs(values: list[str]) -> list[str]:
    """Return sorted networks in canonical form; a bare address becomes a host network (/32 or /128)."""
    networks = []
    for value in values:
        try:
            networks.append(str(ipaddress.ip_network(value.strip(), strict=False)))
        except ValueError:
            raise VaultConfigError(
                f"bound_cidrs entry {value!r} is not an IP address or network; use for example 198.51.100.21 "
                "or 198.51.100.0/24"
            ) from None
    return sorted(set(networks))


def render_policy(mount: str, prefix: str, store_id: str, workload: str) -> str:
    """Return the ACL policy that allows reading one store's secrets of one workload, and nothing else."""
    base = f"{prefix}/{store_id}/{workload}"
    return (
        f"# Managed by retail.edge.vault_store_access: store {store_id}, workload {workload}.\n"
        f"# Read-only access to {mount}/{base}/*; writes, lists and other stores are denied.\n"
        f'path "{mount}/data/{base}/*" {{\n'
        '  capabilities = ["read"]\n'
        "}\n"
        "\n"
        f'path "{mount}/metadata/{base}/*" {{\n'
        '  capabilities = ["read"]\n'
        "}\n"
    )


class StoreAccess:
    """Policy and AppRole of one store workload, read and reconciled through one connection."""

    def __init__(self, module: AnsibleModule, connection: VaultConnection) -> None:
        self.module = module
        self.connection = connection
        params = module.params
        self.store_id = validate_name(params["store_id"], "store_id")
        self.workload = validate_name(params["workload"], "workload")
        self.mount = params["mount_point"].strip("/")
        self.prefix = validate_secret_path(params["secrets_prefix"].strip("/"), "secrets_prefix")
        default_name = f"store-{self.store_id}-{self.workload}"
        self.policy_name = validate_name(params["policy_name"] or default_name, "policy_name")
        self.role_name = validate_name(params["role_name"] or default_name, "role_name")
        self.approle_mount = (params["approle_mount_point"] or "approle").strip("/")
        self.role_path = f"auth/{self.approle_mount}/role/{self.role_name}"
        self.policy_path = f"sys/policies/acl/{self.policy_name}"

    # -- reading --------------------------------------------------------------

    def current_policy(self) -> str | None:
        try:
            response = self.connection.request("GET", self.policy_path)
        except VaultNotFound:
            return None
        return ((response or {}).get("data") or {}).get("policy")

    def current_role(self) -> dict | None:
        try:
            response = self.connection.request("GET", self.role_path)
        except VaultNotFound:
            return None
        data = (response or {}).get("data") or {}
        role = {name: data.get(name) for name in MANAGED_ROLE_FIELDS}
        role["token_policies"] = sorted(role["token_policies"] or [])
        # Vault reports a single-host token_bound_cidrs entry without its /32.
        for name in ("secret_id_bound_cidrs", "token_bound_cidrs"):
            role[name] = normalize_cidrs(role[name] or [])
        return role

    def role_id(self) -> str | None:
        try:
            response = self.connection.request("GET", f"{self.role_path}/role-id")
        except VaultNotFound:
            return None
        return ((response or {}).get("data") or {}).get("role_id")

    def wanted_role(self) -> dict:
        params = self.module.params
        cidrs = normalize_cidrs(params["bound_cidrs"])
        return {
            "token_policies": [self.policy_name],
            "secret_id_ttl": parse_duration(params["secret_id_ttl"], "secret_id_ttl"),
            "secret_id_num_uses": params["secret_id_num_uses"],
            "token_ttl": parse_duration(params["token_ttl"], "token_ttl"),
            "token_max_ttl": parse_duration(params["token_max_ttl"], "token_max_ttl"),
            "secret_id_bound_cidrs": cidrs,
            "token_bound_cidrs": cidrs,
            "bind_secret_id": True,
        }

    # -- states ---------------------------------------------------------------

    def _base_result(self) -> dict:
        return {"policy_name": self.policy_name, "role_name": self.role_name}

    def present(self) -> dict:
        policy = render_policy(self.mount, self.prefix, self.store_id, self.workload)
        role = self.wanted_role()
        if role["secret_id_num_uses"] < 0:
            raise VaultConfigError("secret_id_num_uses must be 0 (unlimited) or a positive number of logins")
        current_policy = self.current_policy()
        current_role = self.current_role()

        policy_changed = (current_policy or "").strip() != policy.strip()
        role_changed = current_role != role
        if not self.module.check_mode:
            if policy_changed:
                self.connection.request("PUT", self.policy_path, payload={"policy": policy})
            if role_changed:
                self.connection.request("POST", self.role_path, payload=role)

        result = self._base_result()
        result.update(
            changed=policy_changed or role_changed,
            policy=policy,
            diff={
                "before_header": f"{self.policy_path} + {self.role_path}",
                "after_header": f"{self.policy_path} + {self.role_path}",
                "before": {"policy": current_policy or "", "role": current_role or {}},
                "after": {"policy": policy, "role": role},
            },
        )
        role_id = self.role_id()
        if role_id:
            result["role_id"] = role_id
        return result

    def absent(self) -> dict:
        current_policy = self.current_policy()
        current_role = self.current_role()
        changed = current_policy is not None or current_role is not None
        if changed and not self.module.check_mode:
            if current_role is not None:
                self.connection.request("DELETE", self.role_path)
            if current_policy is not None:
                self.connection.request("DELETE", self.policy_path)
        result = self._base_result()
        result.update(
            changed=changed,
            diff={
                "before": {"policy": current_policy or "", "role": current_role or {}},
                "after": {"policy": "", "role": {}},
            },
        )
        return result

    def issued(self) -> dict:
        params = self.module.params
        if not self.module.no_log:
            self.module.warn("state=issued returns a secret_id or wrapping token: set no_log: true on this task")
        role_id = self.role_id()
        if role_id is None:
            raise VaultConfigError(
                f"AppRole {self.role_name} does not exist at {self.role_path}; create it first with "
                "state=present (the retail.edge.vault_store_bootstrap role does this for every store)"
            )
        result = self._base_result()
        result.update(changed=True, role_id=role_id)
        if self.module.check_mode:
            return result

        payload = {}
        if params["secret_id_metadata"]:
            payload["metadata"] = json.dumps({str(k): str(v) for k, v in params["secret_id_metadata"].items()})
        headers = None
        if params["wrap_ttl"]:
            headers = {"X-Vault-Wrap-TTL": str(parse_duration(params["wrap_ttl"], "wrap_ttl"))}
        response = self.connection.request("POST", f"{self.role_path}/secret-id", payload=payload, headers=headers)
        response = response or {}
        if headers:
            wrap_info = response.get("wrap_info") or {}
            result.update(wrapped_secret_id=wrap_info.get("token"), wrapping_accessor=wrap_info.get("accessor"))
        else:
            data = response.get("data") or {}
            result.update(secret_id=data.get("secret_id"), secret_id_accessor=data.get("secret_id_accessor"))
        return result

    def run(self) -> dict:
        state = self.module.params["state"]
        if state == "present":
            return self.present()
        if state == "absent":
            return self.absent()
        return self.issued()


def main() -> None:
    module = AnsibleModule(
        argument_spec=vault_argument_spec(
            store_id={"type": "str", "required": True},
            workload={"type": "str", "required": True},
            state={"type": "str", "default": "present", "choices": ["present", "absent", "issued"]},
            mount_point={"type": "str", "default": "kv"},
            secrets_prefix={"type": "str", "default": "stores", "no_log": False},
            policy_name={"type": "str"},
            role_name={"type": "str"},
            secret_id_ttl={"type": "str", "default": "10m", "no_log": False},
            secret_id_num_uses={"type": "int", "default": 1, "no_log": False},
            token_ttl={"type": "str", "default": "5m", "no_log": False},
            token_max_ttl={"type": "str", "default": "15m", "no_log": False},
            bound_cidrs={"type": "list", "elements": "str", "default": []},
            wrap_ttl={"type": "str"},
            secret_id_metadata={"type": "dict", "no_log": False},
        ),
        mutually_exclusive=VAULT_MUTUALLY_EXCLUSIVE,
        supports_check_mode=True,
    )
    if not HAS_HVAC:
        module.fail_json(msg=missing_required_lib("hvac"), exception=HVAC_IMPORT_ERROR)

    try:
        result = run_with_connection(
            vault_options(module.params), lambda connection: StoreAccess(module, connection).run()
        )
    except VaultError as exc:
        module.fail_json(msg=str(exc))

    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
