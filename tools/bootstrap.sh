#!/usr/bin/env bash
# Idempotent set-up on Debian / Raspberry Pi OS: system packages, the virtual
# environment in .venv, and the default model bundle. Everything comes from the
# Debian and PyPI registries; nothing else is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(python3-venv python3-dev gcc libasound2-dev mosquitto espeak-ng sox
              apertium apertium-eng-spa systemd alsa-utils chromium
              # more Apertium pairs: routes through pivots other than English (tests, routes)
              apertium-fr-es apertium-es-pt apertium-spa-cat apertium-spa-ita
              apertium-eng-cat apertium-en-gl)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "edged: installing Debian packages: ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "edged: creating .venv" >&2
  "$PY" -m venv .venv
fi
stamp=.venv/.edged-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "edged: installing Python packages into .venv" >&2
  .venv/bin/pip install -q --upgrade pip >&2
  .venv/bin/pip install -q -e ".[dev]" >&2
  touch "$stamp"
fi

.venv/bin/edged models install default
