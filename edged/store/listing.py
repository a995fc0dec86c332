"""`edged models list`: every catalogue bundle with its install state and how it is trusted."""

from __future__ import annotations

import enum
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from edged.store.catalogue import Catalogue
from edged.store.check import check_bundle
from edged.store.fetch import MB
from edged.store.layout import read_stamp


class State(enum.Enum):
    """What `list_bundles` reports for a bundle."""

    INSTALLED = "installed"
    MISSING = "missing"
    CORRUPT = "corrupt"


class Trust(enum.Enum):
    """How a bundle's downloads are checked."""

    PINNED = "pinned"  # every source has a sha256 in the catalogue (for this machine)
    FIRST_USE = "first-use"  # some source has none: held to what its first install recorded


@dataclass(frozen=True)
class BundleRow:
    """One line of `edged models list`."""

    name: str
    kind: str
    languages: tuple[str, ...]
    size: int | None  # bytes installed (catalogue figure, or the stamp's if unknown there)
    state: State
    trust: Trust
    licence: str
    detail: str  # the first problem when not installed, else ""


def list_bundles(catalogue: Catalogue, models_dir: Path) -> list[BundleRow]:
    """Every catalogue bundle with its install state (cheap check, no full hashing)."""
    rows = []
    for bundle in catalogue.bundles.values():
        problems = check_bundle(bundle, models_dir)
        if not problems:
            state, detail = State.INSTALLED, ""
        elif problems[0].missing:
            state, detail = State.MISSING, ""
        else:
            state, detail = State.CORRUPT, str(problems[0])
        size = bundle.size
        if size is None and state is State.INSTALLED:
            stamp = read_stamp(models_dir / bundle.name) or {}
            size = sum(rec[0] for rec in stamp.get("files", {}).values())
        trust = Trust.PINNED if bundle.pinned else Trust.FIRST_USE
        rows.append(
            BundleRow(
                bundle.name,
                bundle.kind,
                bundle.languages,
                size,
                state,
                trust,
                bundle.licence,
                detail,
            )
        )
    return rows


def print_list(catalogue: Catalogue, models_dir: Path, stream: TextIO | None = None) -> int:
    """Print the `edged models list` table (stdout by default); return the exit status 0."""
    out = stream if stream is not None else sys.stdout
    rows = list_bundles(catalogue, models_dir)
    width = max(len(r.name) for r in rows)
    out.write(
        f"{'BUNDLE':<{width}}  {'KIND':<16} {'LANGUAGES':<10} {'SIZE':>9}  {'STATE':<9}  "
        f"{'TRUST':<9}  LICENCE\n"
    )
    for row in rows:
        size = f"{row.size / MB:.1f} MB" if row.size is not None else "?"
        langs = ",".join(row.languages) or "-"
        if len(langs) > 10:  # NLLB: 107 languages would push the table off the screen
            langs = f"{len(row.languages)} langs"
        out.write(
            f"{row.name:<{width}}  {row.kind:<16} {langs:<10} {size:>9}  "
            f"{row.state.value:<9}  {row.trust.value:<9}  {row.licence}\n"
        )
        if row.detail:
            out.write(f"{'':<{width}}    {row.detail}\n")
    for group in catalogue.groups.values():
        out.write(f"group {group.name}: {' '.join(group.bundles)}\n")
    out.write(
        "trust: pinned = every download is checked against a sha256 in the catalogue;\n"
        "       first-use = the upstream publishes none: the first install records it, and a\n"
        "       later download that differs is refused\n"
    )
    out.write(f"models directory: {models_dir}\n")
    return 0
