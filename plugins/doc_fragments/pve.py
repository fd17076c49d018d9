# Copyright: (c) 2025, retail.edge maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Connection options shared by the Proxmox VE modules (plugins/module_utils/_pve.py)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  api_host:
    description:
      - Host name or IP address of a Proxmox VE node; any node of the cluster answers for all of them.
      - Read from E(PROXMOX_HOST) when not set.
    type: str
    required: true
  api_port:
    description:
      - TCP port of the PVE API.
      - Read from E(PROXMOX_PORT) when not set.
    type: int
    default: 8006
  api_user:
    description:
      - PVE user to log in as, in the form C(NAME@REALM), such as V(root@pam).
      - Required with O(api_password), and with O(api_token_id) when the token id is a bare token name.
      - Read from E(PROXMOX_USER) when not set.
    type: str
  api_password:
    description:
      - Password of O(api_user). The module logs in once per run and uses the ticket for every request.
      - Some changes (device passthrough, bind mounts, feature flags other than C(nesting)) are accepted
        by PVE only from V(root@pam) logged in with a password.
      - Read from E(PROXMOX_PASSWORD) when not set.
      - Mutually exclusive with O(api_token_id).
    type: str
  api_token_id:
    description:
      - API token to log in with, either the bare token name (with O(api_user)) or the full form
        C(USER@REALM!TOKENID) as PVE prints it, such as V(root@pam!ansible).
      - Read from E(PROXMOX_TOKEN_ID) when not set.
    type: str
  api_token_secret:
    description:
      - Secret (UUID) of O(api_token_id).
      - Read from E(PROXMOX_TOKEN_SECRET) when not set.
    type: str
  validate_certs:
    description:
      - Verify the TLS certificate of the PVE API.
      - PVE nodes present a certificate signed by the cluster CA; point O(ca_path) at that CA instead of
        turning verification off.
      - Read from E(PROXMOX_VALIDATE_CERTS) when not set.
    type: bool
    default: true
  ca_path:
    description:
      - PEM file with the CA certificate(s) to verify the PVE API against, such as a copy of
        C(/etc/pve/pve-root-ca.pem) from a node.
      - Without it the system trust store is used.
      - Read from E(PROXMOX_CA_PATH) when not set.
    type: path
  api_timeout:
    description:
      - Seconds to wait for the answer to one API request. Waiting for tasks has its own option.
    type: int
    default: 30
requirements:
  - proxmoxer >= 2.0
  - requests
notes:
  - The module runs on the controller (or wherever it is delegated) and talks HTTPS to the PVE API;
    it never connects to the PVE nodes over SSH.
"""

    ACTIONGROUP_PVE = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/retail.edge.pve) in C(module_defaults) to set the connection options once for all
      Proxmox VE modules of this collection.
    support: full
    membership:
      - retail.edge.pve
"""
