#!/usr/bin/env python3
"""Run the edged benchmark (same as `edged bench`); see `tools/bench.py --help`."""

import sys

from edged.bench import main

if __name__ == "__main__":
    sys.exit(main())
