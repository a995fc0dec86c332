#!/usr/bin/env bash
# The test command of the README and of CI: sets everything up (Debian packages, .venv,
# default models), then runs the whole suite. pytest's "no tests collected" (exit 5) and
# any skipped test fail the run (see tests/conftest.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/bootstrap.sh
export PYTHONUNBUFFERED=1
set +e
.venv/bin/python -m pytest tests -p no:cacheprovider "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "edged: pytest collected no tests: failing" >&2
  exit 1
fi
exit "$rc"
