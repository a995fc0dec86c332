"""ALSA microphone capture and speaker playback through pyalsaaudio.

Capture reads the PCM in non-blocking mode and waits with poll() on the PCM's descriptors
plus a wake-up socket, so close() from another thread ends chunks() at once and a device
that stops delivering audio (a hung USB microphone) is noticed instead of blocking forever.
Playback writes in blocking mode, one period at a time, so stop() takes effect within a
period. Devices are opened through small protocols (`CaptureDevice`, `PlaybackDevice`) so
the reconnect and stop logic can be driven by fakes in tests; the real ones wrap
`alsaaudio.PCM`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import logging
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

import numpy as np
import soxr

from edged.audio import FRAME_SAMPLES, SAMPLE_RATE, AudioChunk, DeviceState
from edged.audio.convert import StreamResampler
from edged.errors import AudioError

log = logging.getLogger(__name__)

# How each sample format the card may hand back decodes to float: numpy dtype and full scale.
# S24_LE is 24 bits in the low three bytes of a 32-bit word (the top byte is not reliable).
_DECODE: dict[str, tuple[str, float]] = {
    "S16_LE": ("<i2", 32768.0),
    "S32_LE": ("<i4", 2147483648.0),
    "S24_LE": ("<i4", 8388608.0),
    "FLOAT_LE": ("<f4", 1.0),
}
SAMPLE_FORMATS = tuple(_DECODE)

_OVERRUN_QUIET_S = 5.0  # clean capture this long ends an overrun episode (one log line each way)
_MAX_UNDERRUN_RETRIES = 8  # consecutive failed writes of one period before giving up
_POLL_READY = select.POLLIN | select.POLLERR | select.POLLHUP | select.POLLNVAL


class Wait(Enum):
    """Outcome of waiting for a capture device."""

    READY = "ready"  # read() has data or an error to report
    TIMEOUT = "timeout"  # nothing within the timeout
    WOKEN = "woken"  # close() was called


@dataclass(frozen=True)
class CaptureRequest:
    """What the source asks the card for; the card may answer with other values."""

    device: str
    rate: int
    channels: int
    period_frames: int
    periods: int
    sample_format: str


class CaptureDevice(Protocol):
    """An open capture PCM, with the parameters the card actually granted."""

    rate: int
    channels: int
    period_frames: int
    sample_format: str

    def read(self) -> tuple[int, bytes]:
        """Non-blocking: (frames, data); (0, b"") when nothing is ready; negative on overrun."""
        ...

    def wait(self, timeout: float, wake: socket.socket) -> Wait: ...

    def close(self) -> None: ...


CaptureOpener = Callable[[CaptureRequest], CaptureDevice]


def _alsa() -> Any:
    try:
        import alsaaudio
    except ImportError as exc:  # pyalsaaudio builds from source; say what it needs
        raise AudioError(
            "pyalsaaudio is not installed: it needs libasound2-dev and a C compiler "
            "(`apt install libasound2-dev build-essential`, then `pip install pyalsaaudio`)"
        ) from exc
    _quiet_alsa_lib()
    return alsaaudio


# alsa-lib's C signature is (file, line, function, err, fmt, ...); the variadic tail is
# never read, and both x86-64 and AArch64 pass the named arguments the same either way.
_ALSA_ERROR_HANDLER = ctypes.CFUNCTYPE(
    None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p
)


@functools.cache
def _quiet_alsa_lib() -> Any:
    """alsa-lib prints its own lines on stderr for every failed open ("ALSA lib pcm.c:…
    Unknown PCM"): without a sound card that is a flood per retry. The same failure
    already reaches us as an exception and is logged once per change of state, so send
    alsa-lib's lines to the debug log instead. Cached: the callback must stay alive."""
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("asound") or "libasound.so.2")
    except OSError:
        return None

    def handler(file: bytes, line: int, function: bytes, err: int, fmt: bytes) -> None:
        log.debug(
            "alsa-lib %s:%d %s: %s",
            file.decode(errors="replace"),
            line,
            function.decode(errors="replace"),
            fmt.decode(errors="replace"),
        )

    callback = _ALSA_ERROR_HANDLER(handler)
    lib.snd_lib_error_set_handler(callback)
    return callback


class AlsaCaptureDevice:
    """A capture PCM opened with pyalsaaudio in non-blocking mode."""

    def __init__(self, request: CaptureRequest) -> None:
        alsaaudio = _alsa()
        self._error = alsaaudio.ALSAAudioError
        try:
            fmt = getattr(alsaaudio, f"PCM_FORMAT_{request.sample_format}")
            self._pcm = alsaaudio.PCM(
                alsaaudio.PCM_CAPTURE,
                alsaaudio.PCM_NONBLOCK,
                device=request.device,
                rate=request.rate,
                channels=request.channels,
                format=fmt,
                periodsize=request.period_frames,
                periods=request.periods,
            )
        except alsaaudio.ALSAAudioError as exc:
            raise AudioError(f"ALSA capture device '{request.device}': {exc}") from exc
        try:
            # pyalsaaudio sets parameters "near" what was asked and ignores refusals: what the
            # card granted is only known from info().
            info = self._pcm.info()
            self.rate = int(info["rate"])
            self.channels = int(info["channels"])
            self.period_frames = int(info["period_size"])
            self.sample_format = str(info["format_name"])
            self._fds = [(fd, mask) for fd, mask in self._pcm.polldescriptors()]
        except alsaaudio.ALSAAudioError as exc:
            self._pcm.close()
            raise AudioError(f"ALSA capture device '{request.device}': {exc}") from exc
        self.device = request.device

    def read(self) -> tuple[int, bytes]:
        try:
            frames, data = self._pcm.read()
        except self._error as exc:
            raise AudioError(f"ALSA capture device '{self.device}': {exc}") from exc
        return frames, data

    def wait(self, timeout: float, wake: socket.socket) -> Wait:
        poller = select.poll()
        for fd, mask in self._fds:
            poller.register(fd, mask)
        poller.register(wake.fileno(), select.POLLIN)
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            events = dict(poller.poll(max(1, int(remaining * 1000))))
            if wake.fileno() in events:
                return Wait.WOKEN
            if not events:
                break
            # Plugins (dsnoop, plug, ...) translate raw descriptor events into PCM events.
            try:
                revents = self._pcm.polldescriptors_revents(
                    [(fd, events.get(fd, 0)) for fd, _ in self._fds]
                )
            except self._error:
                return Wait.READY  # let read() report the error
            if revents & _POLL_READY:
                return Wait.READY
        return Wait.TIMEOUT

    def close(self) -> None:
        try:
            self._pcm.close()
        except self._error as exc:
            log.debug("closing capture device %s: %s", self.device, exc)


class Backoff:
    """Capped exponential back-off: initial, 2x initial, ... up to maximum; reset() on success."""

    def __init__(self, initial: float = 0.5, maximum: float = 8.0) -> None:
        if not 0 < initial <= maximum:
            raise ValueError(
                f"back-off must satisfy 0 < initial ({initial}) <= maximum ({maximum})"
            )
        self.initial = initial
        self.maximum = maximum
        self._next = initial

    def next(self) -> float:
        """The delay before the next attempt."""
        delay = self._next
        self._next = min(self._next * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self._next = self.initial


class _DeviceLost(Exception):
    """The open device stopped working; the source reopens it."""


class AlsaSource:
    """Live microphone: yields FRAME_SAMPLES-long pipeline-format chunks from an ALSA PCM.

    Overruns are counted (`overruns`) and the audio they lost is skipped on the timeline
    (`lost_samples`), so t0/t1 stay on wall time. A device that fails or disappears is
    closed and reopened with capped back-off while `state` is DEGRADED.
    """

    def __init__(
        self,
        device: str = "default",
        rate: int = SAMPLE_RATE,
        channels: int = 1,
        period_frames: int = FRAME_SAMPLES,
        *,
        periods: int = 16,
        sample_format: str = "S16_LE",
        backoff_initial: float = 0.5,
        backoff_max: float = 8.0,
        stall_timeout: float = 2.0,
        account_gaps: bool = True,
        opener: CaptureOpener | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if sample_format not in _DECODE:
            raise AudioError(
                f"capture sample format '{sample_format}' is not supported; "
                f"use one of {', '.join(SAMPLE_FORMATS)}"
            )
        # A deep buffer costs no latency on capture (reads return as soon as a period is in)
        # and rides out the GIL being held elsewhere for a while.
        self.request = CaptureRequest(device, rate, channels, period_frames, periods, sample_format)
        self.stall_timeout = stall_timeout
        self.account_gaps = account_gaps
        self._opener: CaptureOpener = opener or AlsaCaptureDevice
        self._clock = clock
        self._backoff = Backoff(backoff_initial, backoff_max)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._wake_send: socket.socket | None = None
        self._callbacks: list[Callable[[DeviceState, str], None]] = []
        self._state = DeviceState.STOPPED
        self.overruns = 0
        self.lost_samples = 0  # on the SAMPLE_RATE timeline, estimated (see _skip)
        self.failures = 0  # failed opens and lost devices
        self.reopens = 0  # successful opens after a loss
        self.actual_rate: int | None = None
        self._position = 0  # next sample index on the timeline
        self._frame = np.zeros(FRAME_SAMPLES, np.float32)
        self._filled = 0
        self._last_read = 0.0  # monotonic time of the last read that returned audio
        self._overrun_run = 0  # overruns since capture was last clean (logged as one episode)
        self._overrun_run_lost = 0
        self._last_overrun = 0.0

    # --- public ----------------------------------------------------------------------

    @property
    def state(self) -> DeviceState:
        return self._state

    def on_state(self, callback: Callable[[DeviceState, str], None]) -> None:
        """Call `callback(state, reason)` on every state change (from the capture thread)."""
        self._callbacks.append(callback)

    def chunks(self) -> Iterator[AudioChunk]:
        wake_recv, wake_send = socket.socketpair()
        with self._lock:
            self._wake_send = wake_send
        try:
            yield from self._run(wake_recv)
        finally:
            with self._lock:
                self._wake_send = None
            wake_send.close()
            wake_recv.close()
            self._set_state(DeviceState.STOPPED, "capture closed")

    def close(self) -> None:
        """Stop capturing; chunks() returns promptly (safe from any thread)."""
        self._stop.set()
        with self._lock:
            if self._wake_send is not None:
                try:
                    self._wake_send.send(b"x")
                except OSError as exc:  # the buffer is full: a wake-up is already pending
                    log.debug("capture wake-up: %s", exc)

    # --- capture loop ----------------------------------------------------------------

    def _run(self, wake: socket.socket) -> Iterator[AudioChunk]:
        lost_at: float | None = None  # when the device was lost (for the timeline gap)
        while not self._stop.is_set():
            try:
                device = self._opener(self.request)
            except AudioError as exc:
                self.failures += 1
                self._set_state(DeviceState.DEGRADED, str(exc))
                if self._stop.wait(self._backoff.next()):
                    return
                continue
            self.reopens += lost_at is not None
            try:
                yield from self._capture(device, wake, lost_at)
                return  # stopped
            except _DeviceLost as exc:
                self.failures += 1
                self._set_state(DeviceState.DEGRADED, str(exc))
                # The timeline skips the outage only if audio had flowed before it.
                lost_at = self._last_read or None
            finally:
                device.close()
            if self._stop.wait(self._backoff.next()):
                return

    def _capture(
        self, device: CaptureDevice, wake: socket.socket, lost_at: float | None
    ) -> Iterator[AudioChunk]:
        dtype, scale = _decode(device)
        if device.rate != self.request.rate or device.channels != self.request.channels:
            log.info(
                "capture %s gives %d Hz x %d ch (asked %d Hz x %d ch); converting",
                self.request.device,
                device.rate,
                device.channels,
                self.request.rate,
                self.request.channels,
            )
        self.actual_rate = device.rate
        resample = StreamResampler(device.rate, device.channels)
        first = True
        while not self._stop.is_set():
            try:
                frames, data = device.read()
            except AudioError as exc:
                raise _DeviceLost(str(exc)) from exc
            now = self._clock()
            if frames < 0:
                yield from self._overrun(frames, now)
                continue
            if frames == 0:
                outcome = device.wait(self.stall_timeout, wake)
                if outcome is Wait.WOKEN:
                    return
                if outcome is Wait.TIMEOUT:
                    raise _DeviceLost(
                        f"no audio from '{self.request.device}' for {self.stall_timeout:g} s"
                    )
                continue
            if first:
                first = False
                self._backoff.reset()
                if lost_at is not None:  # the outage, less the audio this read returned
                    yield from self._skip(now - lost_at - frames / device.rate)
                self._set_state(
                    DeviceState.RUNNING,
                    f"capturing from '{self.request.device}' "
                    f"at {device.rate} Hz x {device.channels} ch",
                )
            self._last_read = now
            self._overrun_quiet(now)
            raw = np.frombuffer(data, dtype=dtype)
            if device.sample_format == "S24_LE":
                raw = (raw << 8) >> 8  # sign-extend the low 24 bits
            yield from self._reblock(resample(raw.astype(np.float32) / scale), now)

    def _reblock(self, samples: np.ndarray, arrival: float) -> Iterator[AudioChunk]:
        """Cut the resampler's output into FRAME_SAMPLES chunks, carrying the remainder."""
        offset = 0
        while offset < len(samples):
            take = min(FRAME_SAMPLES - self._filled, len(samples) - offset)
            self._frame[self._filled : self._filled + take] = samples[offset : offset + take]
            self._filled += take
            offset += take
            if self._filled == FRAME_SAMPLES:
                yield AudioChunk(self._frame.copy(), self._position, arrival)
                self._position += FRAME_SAMPLES
                self._filled = 0

    def _skip(self, seconds: float) -> Iterator[AudioChunk]:
        """Advance the timeline over audio that was lost, so t0/t1 stay on wall time.

        The estimate is the wall time since the last successful read: the ring buffer was
        drained then, and everything captured after it was discarded. It is good to about
        one period. A partly filled frame is completed with silence first.
        """
        if not self.account_gaps or seconds <= 0:
            return
        gap = round(seconds * SAMPLE_RATE)
        if self._filled:
            pad = FRAME_SAMPLES - self._filled
            self._frame[self._filled :] = 0.0
            yield AudioChunk(self._frame.copy(), self._position, self._clock())
            self._position += FRAME_SAMPLES
            self._filled = 0
            gap = max(0, gap - pad)
        self._position += gap
        self.lost_samples += gap

    def _overrun(self, code: int, now: float) -> Iterator[AudioChunk]:
        """Count an overrun (pyalsaaudio has already re-prepared the stream) and skip the gap."""
        self.overruns += 1
        before = self.lost_samples
        yield from self._skip(now - self._last_read if self._last_read else 0.0)
        if not self._overrun_run:
            log.warning(
                "capture overrun on '%s' (%s): audio lost, the capture thread fell behind",
                self.request.device,
                errno.errorcode.get(-code, str(code)),
            )
        self._overrun_run += 1
        self._overrun_run_lost += self.lost_samples - before
        self._last_overrun = now
        self._last_read = now

    def _overrun_quiet(self, now: float) -> None:
        """Log the end of a run of overruns once capture has been clean for a while."""
        if self._overrun_run and now - self._last_overrun > _OVERRUN_QUIET_S:
            log.warning(
                "capture on '%s' clean again after %d overrun(s), about %.2f s of audio lost",
                self.request.device,
                self._overrun_run,
                self._overrun_run_lost / SAMPLE_RATE,
            )
            self._overrun_run = 0
            self._overrun_run_lost = 0

    def _set_state(self, state: DeviceState, reason: str) -> None:
        if state is self._state:
            return
        self._state = state
        level = logging.WARNING if state is DeviceState.DEGRADED else logging.INFO
        log.log(level, "capture %s: %s", state.value, reason)
        for callback in self._callbacks:
            try:
                callback(state, reason)
            except Exception:
                log.exception("capture state callback failed")


def _decode(device: CaptureDevice) -> tuple[str, float]:
    try:
        return _DECODE[device.sample_format]
    except KeyError:
        raise AudioError(
            f"capture device gives sample format {device.sample_format}, which edged cannot "
            f"read; use a plug device (e.g. 'plughw:1' or 'default') or one of "
            f"{', '.join(SAMPLE_FORMATS)}"
        ) from None


# --- playback ------------------------------------------------------------------------


@dataclass(frozen=True)
class PlaybackRequest:
    """What the sink asks the card for."""

    device: str
    rate: int
    channels: int
    period_frames: int
    periods: int


class PlaybackDevice(Protocol):
    """An open playback PCM (S16_LE interleaved), with the parameters the card granted."""

    rate: int
    channels: int
    period_frames: int
    buffer_frames: int

    def write(self, data: bytes) -> int:
        """Blocking: frames written; negative (-EPIPE) on an underrun, nothing written."""
        ...

    def queued_frames(self) -> int:
        """Frames written but not yet played."""
        ...

    def drain(self) -> None: ...

    def drop(self) -> None: ...

    def close(self) -> None: ...


PlaybackOpener = Callable[[PlaybackRequest], PlaybackDevice]


class AlsaPlaybackDevice:
    """A playback PCM opened with pyalsaaudio in blocking mode."""

    def __init__(self, request: PlaybackRequest) -> None:
        alsaaudio = _alsa()
        self._error = alsaaudio.ALSAAudioError
        self.device = request.device
        try:
            self._pcm = alsaaudio.PCM(
                alsaaudio.PCM_PLAYBACK,
                alsaaudio.PCM_NORMAL,
                device=request.device,
                rate=request.rate,
                channels=request.channels,
                format=alsaaudio.PCM_FORMAT_S16_LE,
                periodsize=request.period_frames,
                periods=request.periods,
            )
        except alsaaudio.ALSAAudioError as exc:
            raise AudioError(f"ALSA playback device '{request.device}': {exc}") from exc
        try:
            info = self._pcm.info()
        except alsaaudio.ALSAAudioError as exc:
            self.drop()
            self.close()
            raise AudioError(f"ALSA playback device '{request.device}': {exc}") from exc
        if info["format_name"] != "S16_LE":
            self.close()
            raise AudioError(
                f"ALSA playback device '{request.device}' does not take S16_LE; "
                "use a plug device such as 'plughw:0' or 'default'"
            )
        self.rate = int(info["rate"])
        self.channels = int(info["channels"])
        self.period_frames = int(info["period_size"])
        self.buffer_frames = int(info["buffer_size"])

    def write(self, data: bytes) -> int:
        try:
            return int(self._pcm.write(data))
        except self._error as exc:
            raise AudioError(f"ALSA playback device '{self.device}': {exc}") from exc

    def queued_frames(self) -> int:
        try:
            avail = int(self._pcm.avail())
        except self._error as exc:
            log.debug("playback avail on %s: %s", self.device, exc)
            avail = -1
        # A negative avail is an xrun or a lost device: nothing is queued; drain() reports it.
        return max(0, self.buffer_frames - avail) if avail >= 0 else 0

    def drain(self) -> None:
        try:
            self._pcm.drain()
        except self._error as exc:
            raise AudioError(f"ALSA playback device '{self.device}': {exc}") from exc

    def drop(self) -> None:
        try:
            self._pcm.drop()
        except self._error as exc:
            log.debug("dropping playback on %s: %s", self.device, exc)

    def close(self) -> None:
        # pyalsaaudio's close() drains a playback PCM first; after drain() or drop() that
        # returns at once.
        try:
            self._pcm.close()
        except self._error as exc:
            log.debug("closing playback device %s: %s", self.device, exc)


class AlsaSink:
    """Plays synthesized speech on an ALSA PCM; play() blocks until the audio has been heard.

    The device is opened for each play() call at `rate` (None: the speech's own rate, which
    a plug device converts if it must) and the speech is resampled with soxr to whatever
    rate the card actually granted. A little silence goes first so amplifiers that wake on
    the first samples do not clip the start. stop() from another thread cuts playback off
    within about one period; `interrupted` then says that the last play() did not finish.
    """

    def __init__(
        self,
        device: str = "default",
        rate: int | None = None,
        channels: int = 1,
        *,
        period: float = 0.025,
        periods: int = 8,
        lead_in: float = 0.05,
        opener: PlaybackOpener | None = None,
    ) -> None:
        self.device = device
        self.rate = rate
        self.channels = channels
        self.period = period
        self.periods = periods
        self.lead_in = lead_in
        self._opener: PlaybackOpener = opener or AlsaPlaybackDevice
        self._abort = threading.Event()
        self._playing = threading.Event()
        self._lock = threading.Lock()
        self._closed = False
        self.interrupted = False
        self.underruns = 0

    @property
    def playing(self) -> bool:
        """True from the start of play() until it returns."""
        return self._playing.is_set()

    def play(self, samples: np.ndarray, sample_rate: int) -> None:
        with self._lock:
            if self._closed:
                raise AudioError(f"ALSA playback on '{self.device}' is closed")
            self._abort.clear()
            self._playing.set()
        try:
            self.interrupted = not self._play(samples, sample_rate)
        finally:
            self._playing.clear()

    def stop(self) -> None:
        """Abort the current play() (if any); it returns within about one period."""
        with self._lock:
            if self._playing.is_set():
                self._abort.set()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._abort.set()

    def _play(self, samples: np.ndarray, sample_rate: int) -> bool:
        rate = self.rate or sample_rate
        request = PlaybackRequest(
            self.device, rate, self.channels, max(32, round(rate * self.period)), self.periods
        )
        device = self._opener(request)
        try:
            pcm = self._pcm_bytes(samples, sample_rate, device)
            frame_bytes = 2 * device.channels
            period_bytes = device.period_frames * frame_bytes
            underruns = self.underruns
            for start in range(0, len(pcm), period_bytes):
                if self._abort.is_set():
                    device.drop()
                    return False
                self._write_all(device, pcm[start : start + period_bytes], frame_bytes)
            if self.underruns > underruns:
                log.warning(
                    "playback underrun on '%s' (%d so far): the speaker heard a gap",
                    self.device,
                    self.underruns,
                )
            # Wait out what is still queued on the abort event rather than in drain(), which
            # cannot be interrupted from another thread; the final drain() is then short.
            if self._abort.wait(device.queued_frames() / device.rate):
                device.drop()
                return False
            device.drain()
            return True
        finally:
            device.close()

    def _pcm_bytes(self, samples: np.ndarray, sample_rate: int, device: PlaybackDevice) -> bytes:
        """Mono float speech to S16_LE interleaved at the device's rate, lead-in and padding."""
        audio = np.asarray(samples, dtype=np.float32).reshape(-1)
        if sample_rate != device.rate and len(audio):
            audio = soxr.resample(audio, sample_rate, device.rate, quality="HQ")
        lead = round(self.lead_in * device.rate)
        total = lead + len(audio)
        # Whole periods: pyalsaaudio holds a short last write back until more data comes.
        total += -total % device.period_frames
        mono = np.zeros(total, np.int16)
        mono[lead : lead + len(audio)] = np.clip(audio * 32767.0, -32768, 32767).astype(np.int16)
        frames = np.repeat(mono, device.channels) if device.channels > 1 else mono
        return frames.astype("<i2").tobytes()

    def _write_all(self, device: PlaybackDevice, data: bytes, frame_bytes: int) -> None:
        failures = 0
        while data:
            written = device.write(data)
            if written < 0:  # underrun: pyalsaaudio re-prepared the stream, nothing was written
                self.underruns += 1
                failures += 1
                if failures > _MAX_UNDERRUN_RETRIES:
                    raise AudioError(
                        f"ALSA playback device '{self.device}' keeps underrunning "
                        f"({errno.errorcode.get(-written, str(written))}); is it still there?"
                    )
                continue
            failures = 0
            data = data[written * frame_bytes :]
