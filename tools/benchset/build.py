#!/usr/bin/env python3
"""Generate the bundled benchmark set (benchset.wav + manifest.json) from set.json.

    tools/benchset/build.py [OUT_DIR] [--clips DIR]

OUT_DIR defaults to bench-out/set (gitignored); `edged bench` does this itself.
"""

import argparse
import sys
from pathlib import Path

from edged import store
from edged.bench.sets import DEFAULT_SPEC, DEFAULT_SPEECH_DIR, build_set
from edged.errors import EdgedError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", type=Path, default=Path("bench-out/set"))
    parser.add_argument("--clips", type=Path, default=DEFAULT_SPEECH_DIR)
    parser.add_argument("--spec", type=Path, default=DEFAULT_SPEC)
    args = parser.parse_args()
    try:
        built = build_set(args.out, args.clips, store.default_models_dir(), args.spec)
    except EdgedError as exc:
        print(f"build: error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(
        f"{built.audio} ({built.duration:.1f} s), {built.manifest_path} "
        f"({len(built.manifest.utterances)} utterances)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
