"""`python -m owncdn.cli`: the same as the `owncdn` command (``cli/entry.py``)."""

import sys

from owncdn.cli.entry import main

sys.exit(main())
