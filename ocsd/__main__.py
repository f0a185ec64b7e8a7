"""``python -m ocsd`` is the same as the ``ocsd`` console script."""

import sys

from ocsd.cli import main

sys.exit(main())
