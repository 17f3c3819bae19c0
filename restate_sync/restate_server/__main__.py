"""``python -m restate_sync.restate_server install|path|version``: see :mod:`.cli`."""

import sys

from .cli import main

sys.exit(main())
