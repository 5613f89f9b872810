"""``python -m edgevoice.localagent --dialect xuna``: run the local agent by hand."""

import sys

from .cli import main

sys.exit(main())
