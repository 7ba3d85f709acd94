#!/usr/bin/env python
"""``python train.py ...`` is ``aigc-edge train ...`` (:mod:`aigc_edge_env.cli.train`)."""

import sys

from aigc_edge_env.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
