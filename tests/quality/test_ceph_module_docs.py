"""The committed Markdown of pve_ceph_pool must match its DOCUMENTATION, EXAMPLES and RETURN."""

from __future__ import annotations

import sys

from tests.support import ROOT, run


def test_pve_ceph_pool_docs_up_to_date():
    script = ROOT / "scripts" / "gen_module_docs.py"
    proc = run([sys.executable, str(script), "--check", "pve_ceph_pool"], timeout=120)
    assert proc.returncode == 0, f"{proc.stderr}{proc.stdout}"
