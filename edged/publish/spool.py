"""A bounded, durable FIFO of final events that the broker has not acknowledged yet.

SQLite (stdlib) rather than hand-rolled append-only files: one INSERT or DELETE is atomic,
a torn write after a power cut is rolled back by SQLite instead of by our own recovery code,
and removing acknowledged records needs no compaction pass. The database runs in WAL mode
with `synchronous=FULL`, so every `append()` and `ack()` is fsync'ed before it returns: a
final that `append()` accepted survives `kill -9` and a power cut. At edged's rate (a final
every second or so) that is one small fsync per final, cheap even on an SD card.

Row ids come from AUTOINCREMENT, so they grow forever and give the delivery order, across
restarts too.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from edged.errors import ConfigError

log = logging.getLogger(__name__)

SPOOL_FILENAME = "spool.sqlite3"
LOCK_FILENAME = "spool.lock"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS finals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL
)
"""


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
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(
                f"mqtt.spool_dir: cannot create {self.path.parent} ({err.strerror}); "
                "point it at a writable directory (the service's StateDirectory)"
            ) from err
        self._lock_fd = self._take_directory()
        self._db = self._open()
        self._count = self._db.execute("SELECT COUNT(*) FROM finals").fetchone()[0]
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

    def _open(self) -> sqlite3.Connection:
        try:
            return self._connect()
        except sqlite3.OperationalError as err:
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
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise sqlite3.DatabaseError("quick_check failed")
            db.execute(_SCHEMA)
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def append(self, topic: str, payload: bytes) -> int | None:
        """Store one message durably and return its id; beyond `limit` the oldest are dropped.

        Returns None (and logs) if the disk refuses the write: a full disk costs finals, not
        the daemon.
        """
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                cur = self._db.execute(
                    "INSERT INTO finals (topic, payload) VALUES (?, ?)", (topic, payload)
                )
                excess = self._count + 1 - self.limit
                if excess > 0:
                    self._db.execute(
                        "DELETE FROM finals WHERE id IN "
                        "(SELECT id FROM finals ORDER BY id LIMIT ?)",
                        (excess,),
                    )
                self._db.execute("COMMIT")
            except sqlite3.Error as err:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                self._dropped += 1
                log.error("spool %s: cannot store a final (%s); it is lost", self.path, err)
                return None
            self._count += 1
            if excess > 0:
                self._count -= excess
                self._dropped += excess
                if not self._dropping:
                    log.warning(
                        "spool full (%d finals): dropping the oldest until the broker is back",
                        self.limit,
                    )
                    self._dropping = True
            return cur.lastrowid

    def after(self, cursor: int, limit: int) -> list[SpoolRecord]:
        """Up to `limit` records with id greater than `cursor`, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload FROM finals WHERE id > ? ORDER BY id LIMIT ?",
                (cursor, limit),
            ).fetchall()
        return [SpoolRecord(row[0], row[1], bytes(row[2])) for row in rows]

    def ack(self, ids: Iterable[int]) -> None:
        """Remove delivered records (ids already gone, e.g. dropped, are ignored)."""
        batch = [(i,) for i in ids]
        if not batch:
            return
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                before = self._db.total_changes
                self._db.executemany("DELETE FROM finals WHERE id = ?", batch)
                removed = self._db.total_changes - before
                self._db.execute("COMMIT")
            except sqlite3.Error as err:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                # The records stay and are sent again after the next reconnect: a duplicate,
                # never a loss.
                log.error("spool %s: cannot remove delivered finals (%s)", self.path, err)
                return
            self._count -= removed
            if self._dropping and self._count < self.limit:
                self._dropping = False
            self._changed.notify_all()

    def pending(self) -> int:
        """Number of records not yet acknowledged."""
        with self._lock:
            return self._count

    @property
    def dropped(self) -> int:
        """Records lost to the size limit or to a failed write since this spool was opened."""
        with self._lock:
            return self._dropped

    def wait_empty(self, timeout: float) -> bool:
        """Block until every record is acknowledged or `timeout` seconds pass; True if empty."""
        with self._changed:
            return self._changed.wait_for(lambda: self._count == 0, timeout)

    def close(self) -> None:
        """Close the database; records not acknowledged stay for the next run."""
        with self._lock:
            self._db.close()
            os.close(self._lock_fd)
