"""The on-disk spool of finals: order, bound, durability, exclusivity, recovery; a full
disk (a real 64 KiB tmpfs) and private files."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import small_disk as disks
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from small_disk import fill_disk

from edged.errors import ConfigError
from edged.publish.spool import ACKED_FILENAME, SPOOL_FILENAME, Spool

small_disk = disks.small_disk


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


def payload(i: int) -> bytes:
    """About the size of a real mt.final."""
    return f'{{"v":1,"type":"mt.final","utt":{i},"text":"{"x" * 250}"}}'.encode()


def test_a_full_disk_holds_finals_in_memory_and_stores_them_when_space_returns(
    small_disk, caplog: pytest.LogCaptureFixture
) -> None:
    disk = small_disk("64k")
    spool = Spool(disk / "spool")
    ids = [spool.append("t", payload(i)) for i in range(3)]
    filler = fill_disk(disk)
    ids += [spool.append("t", payload(i)) for i in range(3, 23)]
    assert spool.pending() == 23
    held = spool.in_memory()  # the last allocated blocks of the WAL took a few
    assert held >= 10 and spool.not_durable == held and spool.dropped == 0
    # Memory or disk, the sender sees one FIFO.
    assert [r.id for r in spool.after(0, 30)] == ids
    assert [r.payload for r in spool.after(ids[4], 3)] == [payload(i) for i in (5, 6, 7)]
    assert len([r for r in caplog.records if "holding them in memory" in r.message]) == 1

    filler.unlink()
    ids.append(spool.append("t", payload(23)))
    assert spool.in_memory() == 0 and spool.pending() == 24
    spool.close()
    spool = Spool(disk / "spool")  # all on disk now, in order, with their ids
    assert [(r.id, r.payload) for r in spool.after(0, 30)] == [
        (id_, payload(i)) for i, id_ in enumerate(ids)
    ]
    spool.close()


def test_acknowledged_finals_whose_delete_failed_are_never_sent_again(small_disk) -> None:
    disk = small_disk("64k")
    spool = Spool(disk / "spool")
    ids = [spool.append("t", payload(i)) for i in range(4)]
    spool.close()  # checkpoints and removes the WAL: a DELETE now needs new blocks
    filler = fill_disk(disk)
    spool = Spool(disk / "spool")
    spool.ack(ids[1:])  # the broker acknowledged them; the disk refuses the DELETE
    assert spool.pending() == 1
    assert [r.id for r in spool.after(0, 10)] == ids[:1]
    spool.close()

    for _ in range(2):  # a restart on the full disk, then one with room again
        spool = Spool(disk / "spool")
        assert spool.pending() == 1
        assert [r.id for r in spool.after(0, 10)] == ids[:1]
        spool.close()
        filler.unlink(missing_ok=True)
    spool = Spool(disk / "spool")
    spool.ack(ids[:1])
    new = spool.append("t", b"later")
    assert new > ids[-1] and [r.id for r in spool.after(0, 10)] == [new]
    spool.close()


def test_a_new_spool_on_a_full_disk_starts_in_memory_and_moves_to_disk(small_disk) -> None:
    # Not a ConfigError: exit 78 would stop systemd from ever retrying.
    disk = small_disk("64k")
    (disk / "spool").mkdir()
    filler = fill_disk(disk)
    spool = Spool(disk / "spool")
    ids = [spool.append("t", payload(i)) for i in range(5)]
    assert spool.in_memory() == 5 and [r.id for r in spool.after(0, 10)] == ids
    spool.ack(ids[:2])
    assert spool.pending() == 3
    filler.unlink()
    ids.append(spool.append("t", payload(5)))
    assert spool.in_memory() == 0
    spool.close()
    spool = Spool(disk / "spool")
    assert [r.id for r in spool.after(0, 10)] == ids[2:]
    spool.close()


def test_a_torn_acked_file_costs_duplicates_never_finals(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path)
    ids = fill(spool, 3)
    spool.close()
    # Numbers that would call every final delivered, without their checksum: ignored.
    (tmp_path / ACKED_FILENAME).write_text(f"{ids[-1]} {ids[-1] + 1} 12345".ljust(4096))
    spool = Spool(tmp_path)
    assert [r.id for r in spool.after(0, 10)] == ids
    assert any("unreadable" in r.message for r in caplog.records)
    spool.close()


def test_the_spool_bounds_its_own_disk_use(small_disk) -> None:
    # A day of finals through a small disk: checkpoints keep the WAL short and reuse its
    # blocks; freed pages are reused. Nothing is ever refused.
    disk = small_disk("64k")
    spool = Spool(disk / "spool")
    for batch in range(60):
        ids = [spool.append("t", payload(batch * 10 + i)) for i in range(10)]
        spool.ack(ids)
    assert spool.not_durable == 0 and spool.pending() == 0
    used = sum(p.stat().st_size for p in (disk / "spool").iterdir())
    assert used < 48 * 1024, sorted((p.name, p.stat().st_size) for p in (disk / "spool").iterdir())
    spool.close()


def test_spool_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        spool = Spool(tmp_path / "spool")
        spool.append("t", b"secret words")
        files = sorted((tmp_path / "spool").iterdir())
        assert {p.name for p in files} >= {SPOOL_FILENAME, f"{SPOOL_FILENAME}-wal"}
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in files}
        assert set(modes.values()) == {0o600}, modes
        assert stat.S_IMODE((tmp_path / "spool").stat().st_mode) == 0o700
        spool.close()
    finally:
        os.umask(old)


class SpoolOnASmallDisk(RuleBasedStateMachine):
    """Appends, acks, restarts, and a disk that fills and frees under them: the spool stays
    one FIFO equal to a list of what was appended and not acknowledged."""

    disk: Path

    def __init__(self) -> None:
        super().__init__()
        self.directory = self.disk / "spool"
        self.spool = Spool(self.directory, limit=1000)
        self.model: list[tuple[int, bytes]] = []
        self.filler: Path | None = None
        self.counter = 0
        self.highest = 0  # ids only grow, across restarts too: none is ever reused

    @rule(n=st.integers(1, 8), size=st.integers(10, 700))
    def append(self, n: int, size: int) -> None:
        for _ in range(n):
            body = f"{self.counter}:".encode() + b"x" * size
            self.counter += 1
            record_id = self.spool.append("t", body)
            assert record_id > self.highest
            self.highest = record_id
            self.model.append((record_id, body))

    @rule(data=st.data())
    def ack(self, data: st.DataObject) -> None:
        if not self.model:
            return
        chosen = data.draw(st.sets(st.sampled_from([i for i, _ in self.model]), max_size=12))
        self.spool.ack(chosen)
        self.model = [(i, b) for i, b in self.model if i not in chosen]

    @rule()
    def fill(self) -> None:
        if self.filler is None:
            self.filler = fill_disk(self.disk)

    @rule()
    def free(self) -> None:
        if self.filler is not None:
            self.filler.unlink()
            self.filler = None

    @rule()
    def restart(self) -> None:
        held = self.spool.in_memory()  # the disk may refuse them at close too: lost, logged
        self.spool.close()
        self.spool = Spool(self.directory, limit=1000)
        kept = [(r.id, r.payload) for r in self.spool.after(0, 10_000)]
        assert kept == self.model[: len(kept)] and len(kept) >= len(self.model) - held
        self.model = kept

    @invariant()
    def one_fifo(self) -> None:
        assert [(r.id, r.payload) for r in self.spool.after(0, 10_000)] == self.model
        assert self.spool.pending() == len(self.model)
        if len(self.model) > 2:
            cursor = self.model[1][0]
            assert [r.id for r in self.spool.after(cursor, 3)] == [i for i, _ in self.model[2:5]]

    def teardown(self) -> None:
        self.spool.close()
        if self.filler is not None:
            self.filler.unlink()
        for path in self.directory.iterdir():
            path.unlink()
        self.directory.rmdir()


def test_the_spool_is_one_fifo_whatever_the_disk_does(small_disk) -> None:
    SpoolOnASmallDisk.disk = small_disk("64k")
    run_state_machine_as_test(
        SpoolOnASmallDisk,
        settings=settings(max_examples=40, stateful_step_count=25, deadline=None, database=None),
    )
