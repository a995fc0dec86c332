"""Where installed bundles live and the store's own files inside a models directory.

A models directory holds one subdirectory per bundle, each with a stamp recording
(size, mtime_ns, sha256) of every file at install time, plus the install lock and the
trust-on-first-use record of downloads the catalogue does not pin (`trust.py`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

STAMP = ".edged-stamp.json"
STAMP_FORMAT = 1
LOCK = ".edged-lock"
FIRST_USE = ".edged-first-use.json"  # sha256 of unpinned downloads, as first seen
WORK_PREFIX = ".tmp-"  # install work directories inside the models dir; removed under the lock


def default_models_dir() -> Path:
    """$EDGED_MODELS_DIR, else $XDG_DATA_HOME/edged/models, else ~/.local/share/edged/models."""
    if env := os.environ.get("EDGED_MODELS_DIR"):
        return Path(env).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "edged" / "models"


def read_stamp(bundle_dir: Path) -> dict[str, Any] | None:
    """A bundle's install stamp, or None when it is missing, unreadable or of another format."""
    try:
        stamp = json.loads((bundle_dir / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(stamp, dict) or stamp.get("format") != STAMP_FORMAT:
        return None
    if not isinstance(stamp.get("files"), dict) or not isinstance(stamp.get("dirs"), dict):
        return None
    return stamp
