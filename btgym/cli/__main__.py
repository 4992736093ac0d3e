"""``python -m btgym.cli``: the same as the ``btgym`` command."""

import sys

from btgym.cli import main

sys.exit(main())
