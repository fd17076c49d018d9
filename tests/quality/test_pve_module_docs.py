"""The committed Markdown of the Proxmox modules must match their DOCUMENTATION."""

from __future__ import annotations

import sys

from tests.support import ROOT, run


def test_pve_module_docs_up_to_date():
    script = ROOT / "scripts" / "gen_module_docs.py"
    proc = run([sys.executable, str(script), "--check", "pve_lxc", "pve_lxc_info"], timeout=120)
    assert proc.returncode == 0, f"{proc.stderr}{proc.stdout}"
