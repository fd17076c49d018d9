# Copyright: (c) 2025, retail.edge maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Attribute descriptions shared by the modules of retail.edge."""

from __future__ import annotations


class ModuleDocFragment:
    # Modules add `support: full|partial|none` (and `details`) for each attribute.
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Runs in check mode and reports what a real run would change, without changing anything.
  diff_mode:
    description: Returns the state before and after the change (or the predicted change in check mode)
      when run with C(--diff).
"""

    INFO_MODULE = r"""
options: {}
attributes:
  check_mode:
    support: full
    details: The module only reads, so check mode runs it unchanged.
  diff_mode:
    support: N/A
    details: The module only reads and has nothing to compare.
"""
