"""``python -m trio_quorum`` == the ``trio-quorum`` command."""

import sys

from .cli import main

sys.exit(main())
