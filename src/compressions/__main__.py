"""`python -m compressions ...` (and `accelerate launch -m compressions ...`): the `compressions` command."""

import sys

from compressions.cli.main import main

sys.exit(main())
