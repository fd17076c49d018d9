# Copyright: retail.edge maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # Connection and authentication options of every Vault/OpenBao module and lookup in retail.edge.
    DOCUMENTATION = r"""
options:
  url:
    description:
      - Address of the Vault or OpenBao server, for example V(https://vault.hq.example:8200).
      - When not set, the E(VAULT_ADDR) environment variable is used.
    type: str
  ca_cert:
    description:
      - Path to the PEM file of the CA that signed the server certificate.
      - When not set, the E(VAULT_CACERT) environment variable is used, else the system trust store.
    type: path
  validate_certs:
    description:
      - Verify the server's TLS certificate. Turn this off only against a throwaway test server.
    type: bool
    default: true
  namespace:
    description:
      - Namespace to send requests to (C(X-Vault-Namespace) header).
      - When not set, the E(VAULT_NAMESPACE) environment variable is used.
    type: str
  timeout:
    description:
      - Timeout of each HTTP request, in seconds.
    type: int
    default: 30
  auth_method:
    description:
      - How to authenticate.
      - V(auto) uses the credential given to the task, O(role_id) before O(token). When the task gives
        neither, it uses the environment, E(VAULT_ROLE_ID) before E(VAULT_TOKEN).
      - V(token) uses O(token) (or E(VAULT_TOKEN)) as it is.
      - V(approle) logs in with O(role_id) and O(secret_id) or O(wrapped_secret_id). The token obtained by
        the login is revoked when the task ends.
    type: str
    choices: [auto, token, approle]
    default: auto
  token:
    description:
      - Vault token for O(auth_method=token).
      - When not set, the E(VAULT_TOKEN) environment variable is used.
    type: str
  role_id:
    description:
      - AppRole role_id for O(auth_method=approle).
      - When not set, the E(VAULT_ROLE_ID) environment variable is used.
    type: str
  secret_id:
    description:
      - AppRole secret_id for O(auth_method=approle).
      - When not set, the E(VAULT_SECRET_ID) environment variable is used.
      - Mutually exclusive with O(wrapped_secret_id).
    type: str
  wrapped_secret_id:
    description:
      - Response-wrapping token whose wrapped response holds an AppRole secret_id, as returned by
        M(retail.edge.vault_store_access) with O(retail.edge.vault_store_access#module:wrap_ttl).
      - It is unwrapped once, right before the login. A second unwrap of the same token fails, which
        also shows the owner that someone else used it.
      - Mutually exclusive with O(secret_id).
    type: str
  approle_mount_point:
    description:
      - Path where the AppRole auth method is enabled (without C(auth/)).
    type: str
    default: approle
requirements:
  - hvac (Python library). Checked with 0.11.2, the python3-hvac package of Debian 12, and with 2.4.
"""

    # Where lookup plugins also read these options from: environment and inventory variables.
    PLUGINS = r"""
options:
  url:
    env:
      - name: VAULT_ADDR
    vars:
      - name: retail_edge_vault_url
  ca_cert:
    env:
      - name: VAULT_CACERT
    vars:
      - name: retail_edge_vault_ca_cert
  validate_certs:
    vars:
      - name: retail_edge_vault_validate_certs
  namespace:
    env:
      - name: VAULT_NAMESPACE
    vars:
      - name: retail_edge_vault_namespace
  auth_method:
    vars:
      - name: retail_edge_vault_auth_method
  token:
    env:
      - name: VAULT_TOKEN
    vars:
      - name: retail_edge_vault_token
  role_id:
    env:
      - name: VAULT_ROLE_ID
    vars:
      - name: retail_edge_vault_role_id
  secret_id:
    env:
      - name: VAULT_SECRET_ID
    vars:
      - name: retail_edge_vault_secret_id
  approle_mount_point:
    vars:
      - name: retail_edge_vault_approle_mount_point
"""
