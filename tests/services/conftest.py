"""Make this checkout's src/ win over the venv's editable install, which may point at another checkout."""

import sys

from tests.support import ROOT

sys.path.insert(0, str(ROOT / "src"))
