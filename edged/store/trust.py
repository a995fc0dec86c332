"""Trust on first use for downloads the catalogue does not pin.

Some upstreams publish no checksum for a file. Its sha256 and size are recorded in the
models directory the first time it is installed; a later download of the same source that
differs is refused, so a file replaced upstream (or on the way) is never installed
silently. A sha256 in the catalogue always takes precedence over this record.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edged.errors import ModelError
from edged.store.layout import FIRST_USE

log = logging.getLogger(__name__)

RECORD_FORMAT = 1


@dataclass(frozen=True)
class Seen:
    """What one unpinned download was when first installed."""

    sha256: str
    size: int
    bundle: str
    first_seen: str  # ISO date and time, UTC


class FirstUseRecord:
    """The `.edged-first-use.json` of a models directory: source key -> first-seen digest.

    Keys name a source precisely: the URL of a download, or the wheel file of a PyPI
    source (its name carries the platform, so each machine records its own wheel).
    """

    def __init__(self, models_dir: Path) -> None:
        self.path = models_dir / FIRST_USE
        self._seen: dict[str, Seen] = self._load()
        self._new: dict[str, Seen] = {}

    def get(self, key: str) -> Seen | None:
        """The first-seen digest of `key`, None if it was never installed here."""
        return self._new.get(key) or self._seen.get(key)

    def check(self, key: str, sha256: str, size: int, bundle: str, origin: str) -> None:
        """Refuse a download that differs from its first-seen digest; note a new one.

        `origin` is the catalogue file, named in the error as the place to pin a new file.
        """
        seen = self.get(key)
        if seen is None:
            now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
            self._new[key] = Seen(sha256, size, bundle, now)
            return
        if seen.sha256 != sha256 or seen.size != size:
            raise ModelError(
                f"{key}: the download has sha256 {sha256} ({size} bytes), but when it was "
                f"first installed ({seen.first_seen}, bundle {seen.bundle}) it had sha256 "
                f"{seen.sha256} ({seen.size} bytes): the file was replaced upstream or "
                "altered on the way, so it is refused; if the new file is the one you want, "
                f"pin its sha256 in {origin} or remove its entry from {self.path}"
            )

    def commit(self) -> None:
        """Write the digests noted since the last commit (after a bundle installed)."""
        if not self._new:
            return
        self._seen.update(self._new)
        self._new.clear()
        doc = {
            "format": RECORD_FORMAT,
            "sources": {key: vars(seen) for key, seen in sorted(self._seen.items())},
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=1), encoding="utf-8")
        os.replace(tmp, self.path)  # a crash leaves the old record or the new, never half

    def discard(self) -> None:
        """Forget the digests noted for a bundle that failed to install."""
        self._new.clear()

    def _load(self) -> dict[str, Seen]:
        try:
            doc: Any = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ModelError(
                f"cannot read {self.path} (the record of unpinned downloads): {exc}; "
                "restore it or delete it to trust the next downloads anew"
            ) from exc
        sources = doc.get("sources") if isinstance(doc, dict) else None
        if not isinstance(sources, dict) or doc.get("format") != RECORD_FORMAT:
            raise ModelError(f"{self.path}: unknown format; delete it to start a new record")
        try:
            return {key: Seen(**value) for key, value in sources.items()}
        except TypeError as exc:
            raise ModelError(f"{self.path}: malformed entry ({exc}); delete it") from exc
