"""Install pip from a local wheel in place of get-pip.py (template: @WHEEL@ is replaced by setup.sh).

ansible-test runs this file as get-pip.py with pip's install arguments plus
get-pip's own --no-setuptools and --no-wheel flags, which pip does not know.
"""

import sys

WHEEL = "@WHEEL@"

sys.path.insert(0, WHEEL)

from pip._internal.cli.main import main  # noqa: E402  (pip comes from the wheel above)

args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
sys.exit(main(["install", "--no-index", "--find-links", WHEEL.rsplit("/", 1)[0], *args]))
