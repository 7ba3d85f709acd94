"""``python -m aigc_edge_env`` is ``aigc-edge`` (:mod:`aigc_edge_env.cli`)."""

import sys

from aigc_edge_env.cli import main

sys.exit(main())
