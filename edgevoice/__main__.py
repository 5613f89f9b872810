"""``python -m edgevoice`` is the same as the ``edgevoice`` command."""

import sys

from edgevoice.cli import main

sys.exit(main())
