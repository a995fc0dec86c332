"""A real, small file system for full-disk tests: a tmpfs of a few KiB (needs root).

`small_disk(size="64k")` mounts one under the test's tmp_path and returns its path; it is
unmounted after the test. `fill_disk(directory)` writes a file until the disk says ENOSPC.
"""

from __future__ import annotations

import errno
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """Factory of mounted tmpfs directories: `small_disk(size="64k")`."""
    mounted: list[Path] = []

    def mount(size: str = "64k") -> Path:
        point = tmp_path / f"disk-{len(mounted)}"
        point.mkdir()
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(point)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if result.returncode != 0:
            pytest.fail(f"cannot mount a tmpfs (run the tests as root): {result.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], check=True, timeout=30)


def fill_disk(directory: Path, name: str = "filler") -> Path:
    """Take every free byte of `directory`'s file system with one file; return its path."""
    path = directory / name
    block = b"\0" * 1024
    with path.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(block)
        except OSError as err:
            assert err.errno == errno.ENOSPC, err
        try:  # the last partial block
            while True:
                out.write(b"\0")
        except OSError as err:
            assert err.errno == errno.ENOSPC, err
    return path
