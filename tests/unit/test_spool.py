"""The on-disk spool of finals: order, bound, durability, exclusivity, recovery."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from edged.errors import ConfigError
from edged.publish.spool import SPOOL_FILENAME, Spool


def fill(spool: Spool, n: int, start: int = 0) -> list[int]:
    return [spool.append(f"t/{i}", f"p{i}".encode()) for i in range(start, start + n)]


def test_records_come_back_in_order_and_ack_removes_them(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    ids = fill(spool, 5)
    assert ids == sorted(ids)
    records = spool.after(0, 10)
    assert [r.payload for r in records] == [b"p0", b"p1", b"p2", b"p3", b"p4"]
    assert [r.topic for r in spool.after(ids[1], 2)] == ["t/2", "t/3"]
    spool.ack([ids[0], ids[2]])
    assert spool.pending() == 3
    assert [r.payload for r in spool.after(0, 10)] == [b"p1", b"p3", b"p4"]
    spool.ack([ids[0]])  # already gone: ignored, count unchanged
    assert spool.pending() == 3
    spool.close()


def test_ids_keep_growing_after_the_spool_empties(tmp_path: Path) -> None:
    # The sender's cursor relies on it: a new final must sort after everything sent before.
    spool = Spool(tmp_path)
    first = fill(spool, 3)
    spool.ack(first)
    spool.close()
    spool = Spool(tmp_path)
    assert spool.append("t", b"x") > max(first)
    spool.close()


def test_limit_drops_the_oldest_and_counts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path, limit=3)
    fill(spool, 7)
    assert spool.pending() == 3
    assert spool.dropped == 4
    assert [r.payload for r in spool.after(0, 10)] == [b"p4", b"p5", b"p6"]
    # one log line when dropping starts, not one per drop
    assert len([r for r in caplog.records if "spool full" in r.message]) == 1
    spool.close()


def test_unacknowledged_records_survive_kill_9(tmp_path: Path) -> None:
    # A child appends, acknowledges some, and is killed without closing anything.
    script = f"""
import os, signal
from pathlib import Path
from edged.publish.spool import Spool
spool = Spool(Path({str(tmp_path)!r}))
ids = [spool.append("t", f"p{{i}}".encode()) for i in range(6)]
spool.ack(ids[:2])
os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = subprocess.run([sys.executable, "-c", script], timeout=60)
    assert proc.returncode == -9
    spool = Spool(tmp_path)
    assert spool.pending() == 4
    assert [r.payload for r in spool.after(0, 10)] == [b"p2", b"p3", b"p4", b"p5"]
    spool.close()


def test_wait_empty_returns_when_the_last_record_is_acked(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    ids = fill(spool, 3)
    assert not spool.wait_empty(0.01)
    acker = threading.Thread(target=spool.ack, args=(ids,))
    acker.start()
    assert spool.wait_empty(5)
    acker.join()
    spool.close()


def test_a_second_process_cannot_share_the_directory(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    with pytest.raises(ConfigError, match="in use by another edged process"):
        Spool(tmp_path)
    spool.close()
    Spool(tmp_path).close()  # free again once closed


def test_a_corrupt_spool_is_moved_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / SPOOL_FILENAME).write_bytes(b"this is not a database" * 100)
    spool = Spool(tmp_path)
    assert spool.pending() == 0
    fill(spool, 1)
    assert spool.pending() == 1
    spool.close()
    assert list(tmp_path.glob(f"{SPOOL_FILENAME}.corrupt-*"))
    assert any("unreadable" in r.message for r in caplog.records)


def test_bad_limit_and_unusable_directory_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"mqtt\.spool_limit"):
        Spool(tmp_path, limit=0)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match=r"mqtt\.spool_dir"):
        Spool(blocker / "spool")
