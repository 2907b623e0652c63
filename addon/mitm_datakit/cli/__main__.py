"""`python -m mitm_datakit.cli` is the `datakit` command."""

import sys

from . import main

sys.exit(main())
