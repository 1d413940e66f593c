"""``python -m recstats.cli``: the ``recstats`` command."""

import sys

from . import main

sys.exit(main())
