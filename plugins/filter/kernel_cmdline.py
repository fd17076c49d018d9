# Copyright: (c) 2026, retail.edge maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: kernel_cmdline
short_description: Merge arguments into a kernel command line, replacing arguments with the same key
version_added: 0.1.0
author:
  - retail.edge maintainers (@retail-edge)
description:
  - Takes a kernel command line and returns it with O(add) merged in. An argument C(key=value) replaces any
    argument with the same key, so C(intel_iommu=on) replaces C(intel_iommu=off). Arguments without C(=) are
    added once.
  - O(remove) drops arguments by key (C(quiet)) or exactly (C(iommu=pt)).
  - The order of the arguments that stay is kept, and new ones are appended, so merging twice gives the same line.
options:
  _input:
    description: The current command line.
    type: str
    required: true
  add:
    description: Arguments that must be present.
    type: list
    elements: str
    default: []
  remove:
    description: Arguments or keys that must be absent.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Turn the IOMMU on
  ansible.builtin.set_fact:
    new_cmdline: "{{ current_cmdline | retail.edge.kernel_cmdline(add=['intel_iommu=on', 'iommu=pt']) }}"
"""

RETURN = r"""
_value:
  description: The merged command line, arguments separated by single spaces.
  type: str
"""

import shlex

from ansible.errors import AnsibleFilterError


def _key(argument):
    return argument.split("=", 1)[0]


def kernel_cmdline(cmdline, add=None, remove=None):
    """Return cmdline with the arguments in add present and those in remove absent."""
    if not isinstance(cmdline, str):
        raise AnsibleFilterError(f"kernel_cmdline expects a string, got {type(cmdline).__name__}")
    try:
        arguments = shlex.split(cmdline)
    except ValueError as exc:
        raise AnsibleFilterError(f"kernel command line {cmdline!r} is invalid: {exc}") from exc

    for item in remove or []:
        arguments = [arg for arg in arguments if arg != item and ("=" in item or _key(arg) != item)]
    for item in add or []:
        if "=" in item:
            replaced = [item if _key(arg) == _key(item) else arg for arg in arguments]
            arguments = list(dict.fromkeys(replaced))
            if item not in arguments:
                arguments.append(item)
        elif item not in arguments:
            arguments.append(item)
    return " ".join(shlex.quote(arg) for arg in arguments)


class FilterModule:
    """Kernel command line filters of retail.edge."""

    def filters(self):
        return {"kernel_cmdline": kernel_cmdline}
