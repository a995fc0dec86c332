"""A bounded, durable FIFO of final events that the broker has not acknowledged yet.

SQLite (stdlib) rather than hand-rolled append-only files: one INSERT or DELETE is atomic,
a torn write after a power cut is rolled back by SQLite instead of by our own recovery code,
and removing acknowledged records needs no compaction pass. The database runs in WAL mode
with `synchronous=FULL`, so every `append()` and `ack()` is fsync'ed before it returns: a
final that `append()` accepted on disk survives `kill -9` and a power cut. At edged's rate (a
final every second or so) that is one small fsync per final, cheap even on an SD card.

A full disk must cost neither finals nor delivery:
- disk use is bounded: `locking_mode=EXCLUSIVE` keeps the WAL index in memory (no -shm
  file; the directory lock already keeps other processes out), the WAL is checkpointed every
  few pages and truncated back to `WAL_KEEP_BYTES`, whose blocks stay allocated so that a
  delete still fits when the file system is full;
- a final the disk refuses is held in memory (not durable, counted) and sent like any other;
  it is written to disk, with its id, as soon as a write succeeds again;
- an acknowledged record whose DELETE fails is remembered as gone, in memory and in a small
  preallocated file (`spool.acked`: a watermark, the next id, further gone ids and a CRC32,
  overwritten in place, so it needs no free space), so it is never sent again, not even
  after a restart;
- files stuck at a full disk while holding nothing to send are started again (unlinking
  them frees their space); a spool that cannot even be created waits in memory.

Ids are assigned here and only grow (also across restarts and a corrupt spool moved aside):
they give the delivery order. Every record held in memory is newer than every record on disk.
Files are 0600 (the directory 0700) whatever the umask: finals are what people said.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from edged.errors import ConfigError

log = logging.getLogger(__name__)

SPOOL_FILENAME = "spool.sqlite3"
LOCK_FILENAME = "spool.lock"
ACKED_FILENAME = "spool.acked"
ACKED_BYTES = 4096  # one block: overwritten in place, never grown
PAGE_BYTES = 1024  # small pages: a final or a delete touches ~2 KiB, not ~8 (new spools)
WAL_CHECKPOINT_PAGES = 8  # checkpoint often: the WAL stays a few pages long
WAL_KEEP_BYTES = 16 * 1024  # WAL blocks kept allocated after a checkpoint (room for deletes)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS finals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL
)
"""


def _disk_full(err: Exception) -> bool:
    if isinstance(err, sqlite3.Error):
        return getattr(err, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    return isinstance(err, OSError) and err.errno == errno.ENOSPC


def _stand_in() -> sqlite3.Connection:
    """An empty database in memory that answers reads while the file cannot be created."""
    db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    db.execute(_SCHEMA)
    return db


@dataclass(frozen=True)
class SpoolRecord:
    """One spooled message: `id` orders delivery, `topic` and `payload` are what to publish."""

    id: int
    topic: str
    payload: bytes


class Spool:
    """Durable FIFO of (topic, payload) with at most `limit` records; the oldest go first.

    Thread-safe: one SQLite connection behind a lock. `append()` is called by the pipeline,
    `after()` and `ack()` by the MQTT sender thread, `wait_empty()` by whoever shuts down.
    """

    def __init__(self, directory: Path, limit: int = 10_000) -> None:
        if limit < 1:
            raise ConfigError(f"mqtt.spool_limit = {limit}: must be at least 1")
        self.path = Path(directory) / SPOOL_FILENAME
        self.limit = limit
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._dropped = 0
        self._dropping = False  # a transition flag: log when dropping starts, not per drop
        self._memory: dict[int, SpoolRecord] = {}  # refused by the disk; oldest first
        self._gone: set[int] = set()  # acknowledged or dropped, still on disk (DELETE failed)
        self._not_durable = 0  # finals that were held in memory at some point
        self._detached = False  # the database file could not be re-created: an empty stand-in
        self._delete_failing = False
        self._rebuild_logged = False  # once per full-disk spell: a rebuild may repeat
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(
                f"mqtt.spool_dir: cannot create {self.path.parent} ({err.strerror}); "
                "point it at a writable directory (the service's StateDirectory)"
            ) from err
        self._lock_fd = self._take_directory()
        self._acked_fd = self._open_acked()
        watermark, next_id, extra = self._read_acked()
        self._db = self._open()
        row = self._db.execute(
            "SELECT MAX(id), (SELECT MAX(seq) FROM sqlite_sequence WHERE name = 'finals') "
            "FROM finals"
        ).fetchone()
        # Past everything ever stored, and past what `spool.acked` calls gone: a new record
        # can never be mistaken for an acknowledged one.
        self._next_id = max(row[0] or 0, row[1] or 0, watermark, *extra) + 1
        self._next_id = max(self._next_id, next_id)
        extras = set(extra)
        on_disk = [i for (i,) in self._db.execute("SELECT id FROM finals")]
        # Acknowledged by the broker in an earlier run, but their DELETE failed.
        self._gone = {i for i in on_disk if i <= watermark or i in extras}
        self._count = len(on_disk) - len(self._gone)
        if self._gone and self._delete(self._gone):
            self._gone.clear()
        if self._count:
            log.info(
                "spool %s holds %d undelivered finals from an earlier run", self.path, self._count
            )

    def _take_directory(self) -> int:
        # Two processes sending from one spool would each re-drive it: a duplicate storm.
        path = self.path.with_name(LOCK_FILENAME)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as err:
            raise ConfigError(
                f"mqtt.spool_dir: cannot create {path} ({err.strerror}); the directory must be "
                "writable"
            ) from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ConfigError(
                f"mqtt.spool_dir: {self.path.parent} is in use by another edged process; "
                "give each daemon its own spool directory"
            ) from None
        return fd

    def _open_acked(self) -> int | None:
        path = self.path.with_name(ACKED_FILENAME)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as err:
            log.warning("spool: cannot open %s (%s); a full disk may cause duplicates", path, err)
            return None
        try:
            if os.fstat(fd).st_size < ACKED_BYTES:
                # Allocated now, while there is room, so a full disk can still overwrite it.
                os.pwrite(fd, b"0 0 -".ljust(ACKED_BYTES), 0)
                os.fsync(fd)
        except OSError as err:
            log.warning(
                "spool: cannot prepare %s (%s); a full disk may cause duplicates", path, err
            )
        return fd

    def _read_acked(self) -> tuple[int, int, list[int]]:
        """From spool.acked: the watermark (every id up to it is gone), the next id to give,
        and further gone ids."""
        if self._acked_fd is None:
            return 0, 0, []
        try:
            text = os.pread(self._acked_fd, ACKED_BYTES, 0).decode("ascii")
            if not text.strip():
                return 0, 0, []  # created, never written (the disk was full)
            *words, check = text.split()
            if check != "-" and int(check) != zlib.crc32(" ".join(words).encode()):
                raise ValueError("checksum mismatch")
            numbers = [int(word) for word in words]
        except (OSError, ValueError) as err:
            # A torn write: at worst some acknowledged finals are sent again, none is lost.
            log.warning("spool: %s is unreadable (%s); ignoring it", ACKED_FILENAME, err)
            return 0, 0, []
        numbers += [0] * (2 - len(numbers))
        return numbers[0], numbers[1], numbers[2:]

    def _write_acked(self, disk_done: bool = False) -> None:
        # After a failed DELETE, and at close. The smallest id still to be sent bounds the
        # watermark; `disk_done`: nothing on disk is still to be sent (the files are about to
        # go). The next id is kept too: ids of finals that never reached the disk are not
        # given again.
        if self._acked_fd is None:
            return
        rows = [] if disk_done else self._db.execute("SELECT id FROM finals ORDER BY id")
        live = next(
            (i for (i,) in rows if i not in self._gone),
            min(self._memory, default=self._next_id),
        )
        watermark = live - 1
        words = [str(watermark), str(self._next_id)]
        size = len(words[0]) + len(words[1]) + 2
        for gone in sorted(i for i in self._gone if i > watermark):
            size += len(str(gone)) + 1
            if size > ACKED_BYTES:  # more than fits: those are sent again after a restart
                break
            words.append(str(gone))
        try:
            # A torn write must read as garbage (ignored: duplicates), never as other numbers.
            line = " ".join(words)
            body = f"{line} {zlib.crc32(line.encode())}".encode()
            os.pwrite(self._acked_fd, body.ljust(ACKED_BYTES), 0)
            os.fsync(self._acked_fd)
        except OSError as err:
            log.error("spool: cannot record delivered finals in %s (%s)", ACKED_FILENAME, err)

    def _open(self) -> sqlite3.Connection:
        new = not self.path.exists() or self.path.stat().st_size == 0
        try:
            return self._connect()
        except (sqlite3.OperationalError, OSError) as err:
            if new and _disk_full(err):
                # A full disk must not keep the daemon down (and exit 78 would stop systemd
                # from retrying): finals wait in memory, the next write tries the file again.
                log.error(
                    "spool %s: the disk is full (%s); holding finals in memory until it has room",
                    self.path,
                    err,
                )
                self._detached = True
                return _stand_in()
            raise ConfigError(
                f"mqtt.spool_dir: cannot use {self.path} ({err}); the directory must be writable"
            ) from err
        except sqlite3.DatabaseError as err:
            # A corrupt spool must not keep the daemon down: keep the file for inspection,
            # start an empty one, say so loudly.
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            log.error(
                "spool %s is unreadable (%s); moved to %s, starting empty", self.path, err, aside
            )
            self.path.rename(aside)
            for suffix in ("-wal", "-shm"):
                Path(str(self.path) + suffix).unlink(missing_ok=True)
            return self._connect()

    def _connect(self) -> sqlite3.Connection:
        # Finals are private: the database (and the -wal SQLite gives the same mode) is 0600
        # whatever the umask, also outside systemd.
        for name in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
            if name == self.path or name.exists():
                os.close(os.open(name, os.O_RDWR | os.O_CREAT, 0o600))
                os.chmod(name, 0o600)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute(f"PRAGMA page_size={PAGE_BYTES}")  # only a new database takes it
            db.execute("PRAGMA locking_mode=EXCLUSIVE")  # before WAL: no -shm file
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
            db.execute(f"PRAGMA journal_size_limit={WAL_KEEP_BYTES}")
            if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise sqlite3.DatabaseError("quick_check failed")
            db.execute(_SCHEMA)
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def _write(
        self, statements: list[tuple[str, list[tuple[object, ...]]]]
    ) -> sqlite3.Error | None:
        """Run the statements in one transaction; the error if the disk refused it."""
        if self._detached:
            try:
                self._db = self._connect()
            except (sqlite3.Error, OSError) as problem:
                return sqlite3.OperationalError(f"cannot create the database again ({problem})")
            self._detached = False
            log.warning("spool %s: the database is back on disk", self.path)
        err = self._transaction(statements)
        if err is None:
            return None
        try:
            # Copy the WAL into the database and cut it: this may free what we need.
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass
        else:
            err = self._transaction(statements)
        if err is not None and self._count == 0:
            # Nothing on disk still needs sending, but the files are stuck at a full disk (a
            # WAL that cannot be checkpointed into a database that cannot grow): start them
            # again; unlinking frees their space.
            self._rebuild()
            if not self._detached:  # never into the stand-in: that would pass for durable
                err = self._transaction(statements)
        return err

    def _transaction(
        self, statements: list[tuple[str, list[tuple[object, ...]]]]
    ) -> sqlite3.Error | None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            for sql, rows in statements:
                self._db.executemany(sql, rows)
            self._db.execute("COMMIT")
        except sqlite3.Error as err:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            return err
        self._rebuild_logged = False
        return None

    def _rebuild(self) -> None:
        self._write_acked(disk_done=True)  # what leaves with the files must stay delivered
        try:
            self.path.unlink()  # the database first: without it a -wal is never replayed
        except OSError as err:
            log.error("spool %s: cannot remove it to start again (%s)", self.path, err)
            return
        self._db.close()
        self._gone.clear()
        try:
            for suffix in ("-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            self._db = self._connect()
        except (sqlite3.Error, OSError) as err:
            # Not even an empty database fits: an empty stand-in answers reads, and every
            # write tries the file again first (finals wait in memory meanwhile).
            if not self._rebuild_logged:
                log.error("spool %s: cannot create the database again (%s)", self.path, err)
            self._rebuild_logged = True
            self._db = _stand_in()
            self._detached = True
            return
        if not self._rebuild_logged:
            log.warning(
                "spool %s: full disk; started the database again (it held no undelivered finals)",
                self.path,
            )
        self._rebuild_logged = True

    def _insert(self, records: list[SpoolRecord]) -> sqlite3.Error | None:
        rows: list[tuple[object, ...]] = [(r.id, r.topic, r.payload) for r in records]
        return self._write([("INSERT INTO finals (id, topic, payload) VALUES (?, ?, ?)", rows)])

    def _delete(self, ids: Iterable[int]) -> bool:
        rows: list[tuple[object, ...]] = [(i,) for i in ids]
        err = self._write([("DELETE FROM finals WHERE id = ?", rows)])
        if err is not None and not self._delete_failing:  # once per spell, not per ack
            log.error(
                "spool %s: cannot remove delivered finals (%s); they are marked as sent",
                self.path,
                err,
            )
        self._delete_failing = err is not None
        return err is None

    def append(self, topic: str, payload: bytes) -> int:
        """Store one message and return its id; beyond `limit` the oldest are dropped.

        If the disk refuses the write the message is held in memory (logged, counted in
        `not_durable`) and still delivered; it goes to disk once a write succeeds again.
        """
        with self._lock:
            record = SpoolRecord(self._next_id, topic, payload)
            self._next_id += 1
            held_before = len(self._memory)
            # Through memory, so that whatever happens while it is written (a rebuild of the
            # files, the watermark) counts it as not yet delivered.
            self._memory[record.id] = record
            err = self._store_memory() if not held_before or self._room_for_memory() else None
            if self._memory:
                self._not_durable += 1
                if not held_before:
                    log.error(
                        "spool %s: cannot store finals on disk (%s); holding them in memory, "
                        "not durable, until the disk has room (free space in %s)",
                        self.path,
                        err,
                        self.path.parent,
                    )
            elif held_before:
                log.warning(
                    "spool %s: disk writable again; %d finals held in memory are stored",
                    self.path,
                    held_before,
                )
            self._enforce_limit()
            if self._gone and not self._memory and self._delete(self._gone):
                self._gone.clear()
            return record.id

    def _room_for_memory(self) -> bool:
        # A failing INSERT of thousands of held finals costs real work on every append; ask
        # the file system first (one syscall) while it is still full.
        try:
            disk = os.statvfs(self.path.parent)
        except OSError:
            return True
        needed = 2 * sum(len(r.payload) + len(r.topic) for r in self._memory.values())
        return disk.f_bavail * disk.f_frsize >= needed + 8 * PAGE_BYTES

    def _store_memory(self) -> sqlite3.Error | None:
        # All or nothing, oldest first, with their ids: the sender's cursor stays valid.
        err = self._insert(list(self._memory.values()))
        if err is None:
            self._count += len(self._memory)
            self._memory.clear()
        return err

    def _enforce_limit(self) -> None:
        excess = self._count + len(self._memory) - self.limit
        if excess <= 0:
            return
        if not self._dropping:
            log.warning(
                "spool full (%d finals): dropping the oldest until the broker is back", self.limit
            )
            self._dropping = True
        self._dropped += excess
        from_disk = [
            i
            for (i,) in self._db.execute(
                "SELECT id FROM finals ORDER BY id LIMIT ?", (excess + len(self._gone),)
            )
            if i not in self._gone
        ][:excess]
        if from_disk:
            self._count -= len(from_disk)
            excess -= len(from_disk)
            if not self._delete(from_disk):
                self._gone.update(from_disk)
                self._write_acked()
        for record_id in list(self._memory)[:excess]:
            del self._memory[record_id]

    def after(self, cursor: int, limit: int) -> list[SpoolRecord]:
        """Up to `limit` records with id greater than `cursor`, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload FROM finals WHERE id > ? ORDER BY id LIMIT ?",
                (cursor, limit + len(self._gone)),
            ).fetchall()
            records = [
                SpoolRecord(row[0], row[1], bytes(row[2]))
                for row in rows
                if row[0] not in self._gone
            ][:limit]
            if len(records) < limit:
                newer = (r for r in self._memory.values() if r.id > cursor)
                records += [r for _, r in zip(range(limit - len(records)), newer, strict=False)]
        return records

    def ack(self, ids: Iterable[int]) -> None:
        """Remove delivered records (ids already gone, e.g. dropped, are ignored)."""
        with self._lock:
            wanted = {i for i in ids if self._memory.pop(i, None) is None} - self._gone
            on_disk = (
                [
                    i
                    for (i,) in self._db.execute(
                        f"SELECT id FROM finals WHERE id IN ({','.join('?' * len(wanted))})",
                        tuple(wanted),
                    )
                ]
                if wanted
                else []
            )
            self._count -= len(on_disk)
            doomed = [*on_disk, *self._gone]
            if doomed and self._delete(doomed):
                self._gone.clear()
            elif on_disk:
                # Never sent again, not even after a restart: a duplicate-free full disk.
                self._gone.update(on_disk)
                self._write_acked()
            if self._dropping and self._count + len(self._memory) < self.limit:
                self._dropping = False
            self._changed.notify_all()

    def pending(self) -> int:
        """Number of records not yet acknowledged (on disk or held in memory)."""
        with self._lock:
            return self._count + len(self._memory)

    def in_memory(self) -> int:
        """Records the disk refused, held in memory until it takes them (lost on exit)."""
        with self._lock:
            return len(self._memory)

    @property
    def not_durable(self) -> int:
        """Records that had to be held in memory because the disk refused them."""
        with self._lock:
            return self._not_durable

    @property
    def dropped(self) -> int:
        """Records lost to the size limit since this spool was opened."""
        with self._lock:
            return self._dropped

    def wait_empty(self, timeout: float) -> bool:
        """Block until every record is acknowledged or `timeout` seconds pass; True if empty."""
        with self._changed:
            return self._changed.wait_for(lambda: self._count + len(self._memory) == 0, timeout)

    def close(self) -> None:
        """Close the database; records not acknowledged stay for the next run."""
        with self._lock:
            if self._memory:
                self._store_memory()
            if self._memory:
                log.error(
                    "spool %s: %d undelivered finals could not be written to disk and are lost",
                    self.path,
                    len(self._memory),
                )
                self._memory.clear()
            self._write_acked()  # the next id, for the next run
            self._db.close()
            os.close(self._lock_fd)
            if self._acked_fd is not None:
                os.close(self._acked_fd)
