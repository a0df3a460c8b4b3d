"""``python -m headwater.cli``: the ``headwater`` command (the demo starts the layers this way)."""
import sys

from headwater.cli import main

sys.exit(main())
