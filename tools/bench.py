#!/usr/bin/env python3
"""`edged bench` under another name (the one entry point is edged.cli): `tools/bench.py ARGS`
is `edged bench ARGS`."""

import sys

from edged.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
