"""Whisper's log-mel spectrogram in numpy (what openai-whisper computes with torch).

80 or 128 slaney-normalised mel bands of a 400-point periodic-Hann STFT with hop 160
at 16 kHz, log10, clamped to 8 below the maximum, scaled to about [-1, 1].
"""

from __future__ import annotations

import functools

import numpy as np

from edged.audio import SAMPLE_RATE

N_FFT = 400
HOP = 160
CHUNK_FRAMES = 3000  # Whisper always sees 30 s of features


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz, logarithmic above (librosa's default)."""
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, np.log(6.4) / 27.0
    mel = hz / f_sp
    log_region = hz >= min_log_hz
    mel[log_region] = min_log_hz / f_sp + np.log(hz[log_region] / min_log_hz) / logstep
    return mel


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    hz = mel * f_sp
    log_region = mel >= min_log_mel
    hz[log_region] = min_log_hz * np.exp(logstep * (mel[log_region] - min_log_mel))
    return hz


@functools.cache
def mel_filters(n_mels: int) -> np.ndarray:
    """The (n_mels, N_FFT//2+1) filterbank librosa.filters.mel(sr=16000, n_fft=400) gives."""
    fft_freqs = np.linspace(0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    edges = _mel_to_hz(
        np.linspace(
            _hz_to_mel(np.array([0.0]))[0], _hz_to_mel(np.array([SAMPLE_RATE / 2]))[0], n_mels + 2
        )
    )
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2 : n_mels + 2] - edges[:n_mels]))[:, None]
    return weights.astype(np.float32)


@functools.cache
def _window() -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)


def log_mel(audio: np.ndarray, n_mels: int = 80) -> np.ndarray:
    """Features of (n_mels, CHUNK_FRAMES) for up to 30 s of SAMPLE_RATE audio, zero-padded.

    The padding frames get the value log-mel of silence would get after clamping, so the
    STFT is only computed over real audio.
    """
    audio = audio[: CHUNK_FRAMES * HOP].astype(np.float32, copy=False)
    padded = np.pad(audio, N_FFT // 2, mode="reflect") if len(audio) > N_FFT // 2 else None
    if padded is None:
        padded = np.pad(audio, N_FFT // 2)
    n_frames = len(audio) // HOP
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:n_frames]
    power = np.abs(np.fft.rfft(frames * _window(), axis=1)) ** 2
    mel = mel_filters(n_mels) @ power.T.astype(np.float32)
    log_spec = np.log10(np.maximum(mel, 1e-10))
    # Real Whisper computes over audio padded to 30 s with zeros: log10(1e-10) = -10 there,
    # which counts for the max too.
    peak = max(float(log_spec.max()) if log_spec.size else -10.0, -10.0)
    floor = peak - 8.0
    out = np.full((n_mels, CHUNK_FRAMES), floor, dtype=np.float32)
    out[:, :n_frames] = np.maximum(log_spec, floor)
    return (out + 4.0) / 4.0
