#!/usr/bin/env python
"""``python evaluate.py ...`` is ``aigc-edge evaluate ...`` (:mod:`aigc_edge_env.cli.evaluate`)."""

import sys

from aigc_edge_env.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
