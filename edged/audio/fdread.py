"""Reading a file descriptor so that another thread can interrupt a read blocked on a pipe
whose writer is idle (stdin, a FIFO): poll() on the descriptor and on a self-pipe."""

from __future__ import annotations

import contextlib
import os
import select
import threading

from edged.errors import AudioError


class InterruptibleReader:
    """Unbuffered reads of `fd`; interrupt() (any thread) makes reads return b"" from then on.

    os.read, never a BufferedReader: a daemon thread parked inside BufferedReader.read holds
    its lock, and the interpreter then aborts at exit ("_enter_buffered_busy").
    """

    def __init__(self, fd: int, name: str, owns_fd: bool = True, prefix: bytes = b"") -> None:
        self.name = name
        self.position = 0  # bytes returned so far
        self._prefix = prefix  # already read from fd by the opener (see wav._open_fifo)
        self._fd = fd
        self._owns_fd = owns_fd
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_write, False)
        self._poller = select.poll()
        self._poller.register(fd, select.POLLIN)
        self._poller.register(self._wake_read, select.POLLIN)
        self._lock = threading.Lock()
        self._interrupted = False
        self._closed = False

    @property
    def interrupted(self) -> bool:
        return self._interrupted

    def read(self, size: int) -> bytes:
        """Up to `size` bytes as soon as some are available; b"" at EOF or once interrupted."""
        if self._prefix and size:
            block, self._prefix = self._prefix[:size], self._prefix[size:]
            self.position += len(block)
            return block
        while not self._interrupted:
            ready = {fd for fd, _ in self._poller.poll()}
            if self._wake_read in ready:
                self._interrupted = True
                break
            try:
                block = os.read(self._fd, size)
            except BlockingIOError:  # a non-blocking descriptor woke up empty: poll again
                continue
            except OSError as exc:
                raise AudioError(f"{self.name}: cannot read: {exc.strerror}") from exc
            self.position += len(block)
            return block
        return b""

    def read_exact(self, size: int) -> bytes:
        """`size` bytes, or fewer only at EOF (or once interrupted)."""
        parts: list[bytes] = []
        remaining = size
        while remaining:
            block = self.read(min(remaining, 1 << 16))
            if not block:
                break
            parts.append(block)
            remaining -= len(block)
        return b"".join(parts)

    def skip(self, size: int) -> int:
        """Discard `size` bytes without holding them; returns how many there were."""
        skipped = 0
        while skipped < size:
            block = self.read(min(size - skipped, 1 << 16))
            if not block:
                break
            skipped += len(block)
        return skipped

    def interrupt(self) -> None:
        """End the current and every later read (safe from any thread, before or after close)."""
        with self._lock:
            if self._closed:
                return
            with contextlib.suppress(BlockingIOError):  # full: a wake-up is already pending
                os.write(self._wake_write, b"x")

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            os.close(self._wake_write)
            os.close(self._wake_read)
            if self._owns_fd:
                os.close(self._fd)
