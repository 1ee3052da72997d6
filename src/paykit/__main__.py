"""``python -m paykit``: the same as the ``paykit`` command."""

import sys

from .cli import main

sys.exit(main())
