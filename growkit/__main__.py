"""``python -m growkit ...``: the ``growkit`` command."""
import sys

from .cli import main

sys.exit(main())
