"""Where audio enters the project: files read, checked, mixed down and resampled (Hz).

The one place for it: the model backends (`prepare_audio`, `prepare_audio_channels`), the app's
uploads (`studio.checks.read_upload`), evaluation (`evaluation.audio_io.load_clip`), training data
(`load_audio`) and loop analysis (`music.tempo.check_audio`) all use the reader, the limits, the
mixdown and the resampler here. Problems raise `ValueError` with a message a musician can act on.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf
import soxr
import torch

logger = logging.getLogger(__name__)

MAX_CHANNELS = 8
# Sample rates (Hz) accepted anywhere audio enters.
MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 384_000
# Peak below which audio counts as silence (-80 dBFS): refused where a file is read or a clip
# analysed, a warning where a model takes it (an init clip may be silent on purpose).
SILENCE_PEAK = 1e-4


def check_sample_rate_range(sampling_rate: object, name: str = "Audio") -> int:
    """`sampling_rate` as an int in [`MIN_SAMPLE_RATE`, `MAX_SAMPLE_RATE`] Hz, or ValueError."""
    if sampling_rate is None or isinstance(sampling_rate, bool) or not np.isscalar(sampling_rate) or not (
        MIN_SAMPLE_RATE <= float(sampling_rate) <= MAX_SAMPLE_RATE
    ):
        raise ValueError(
            f"{name} sample rate must be between {MIN_SAMPLE_RATE} and {MAX_SAMPLE_RATE} Hz, got {sampling_rate!r}."
        )
    return int(sampling_rate)


def silence_level(audio: np.ndarray) -> str | None:
    """None when `audio` peaks at or above `SILENCE_PEAK`, else its peak in dBFS as text ("-inf" for zeros)."""
    peak = float(np.max(np.abs(audio))) if np.size(audio) else 0.0
    if peak >= SILENCE_PEAK:
        return None
    return "-inf" if peak == 0 else f"{20 * math.log10(peak):.0f}"


def check_not_silent(audio: np.ndarray, name: str = "Audio") -> None:
    """ValueError when `audio` peaks below `SILENCE_PEAK` (-80 dBFS): there is nothing to work from."""
    level = silence_level(audio)
    if level is not None:
        raise ValueError(f"{name} is silent (peak {level} dBFS, needs above -80 dBFS): there is nothing to work from.")


def mixdown(audio: np.ndarray) -> np.ndarray:
    """Float32 mono `[samples]` mix of `[channels, samples]` audio (the mean of the channels)."""
    audio = np.asarray(audio, dtype=np.float32)
    return audio if audio.ndim == 1 else np.ascontiguousarray(audio.mean(axis=0), dtype=np.float32)


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """`[channels, samples]` (or `[samples]`) audio resampled from `from_rate` to `to_rate` Hz with soxr
    (its default high-quality filter, as librosa's "soxr_hq"), float32, shape kept but for length."""
    audio = np.asarray(audio, dtype=np.float32)
    if int(from_rate) == int(to_rate):
        return audio.copy()
    frames = audio.T if audio.ndim == 2 else audio  # soxr takes [samples, channels]
    resampled = soxr.resample(np.ascontiguousarray(frames), int(from_rate), int(to_rate))
    return np.ascontiguousarray(resampled.T if audio.ndim == 2 else resampled, dtype=np.float32)


def _header(path: Path) -> tuple[float, int | None]:
    """(seconds, channels or None) from the file's header, without decoding the samples."""
    try:
        info = sf.info(path)
        return info.duration, info.channels
    except Exception:  # noqa: BLE001 (not a format libsndfile knows (mp3 on old builds, m4a, webm): ask librosa)
        try:
            return librosa.get_duration(path=path), None
        except Exception as error:  # noqa: BLE001 (any decoder failure is the file's problem)
            raise ValueError(f"Could not read {path.name} as audio ({type(error).__name__}). "
                             "Use a WAV, FLAC, OGG or MP3 file.") from None


def _decode(path: Path) -> tuple[np.ndarray, int]:
    """Float32 `[channels, samples]` and the rate in Hz: libsndfile, else librosa's decoders."""
    try:
        samples, sample_rate = sf.read(path, dtype="float32", always_2d=True)
        return samples.T, int(sample_rate)
    except Exception:  # noqa: BLE001 (libsndfile cannot decode it: try librosa's decoders)
        try:
            audio, sample_rate = librosa.load(path, sr=None, mono=False)
            return np.atleast_2d(audio).astype(np.float32), int(sample_rate)
        except Exception as error:  # noqa: BLE001 (any decoder failure is the file's problem)
            raise ValueError(f"Could not decode {path.name} ({type(error).__name__}: {error}).") from None


def read_audio(
    path: str | Path,
    target_rate: int | None = None,
    mono: bool = False,
    max_seconds: float | None = None,
    allow_silence: bool = False,
) -> tuple[np.ndarray, int]:
    """Read an audio file (wav, flac, ogg, mp3, ...) as float32 `[channels, samples]` and its rate in Hz.

    The length and channel count are checked from the header first, so a 10-minute file is
    refused without decoding it.

    Args:
        path: the file.
        target_rate: resample to this rate in Hz (None: keep the file's rate).
        mono: mix the channels down to one (`[1, samples]`).
        max_seconds: refuse longer files (seconds; None: any length).
        allow_silence: return silent files instead of refusing them.

    Raises:
        ValueError: naming the file, for a missing, empty, unreadable or undecodable file, one longer
            than `max_seconds`, with more than `MAX_CHANNELS` channels, an implausible sample rate,
            NaN or infinite samples, or silence (peak below -80 dBFS) unless `allow_silence`.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"No audio file at {path}.")
    if path.stat().st_size == 0:
        raise ValueError(f"{path.name} is empty (0 bytes).")
    seconds, channels = _header(path)
    if max_seconds is not None and seconds > max_seconds:
        raise ValueError(f"{path.name} is {seconds:.1f} s long; at most {max_seconds:g} s is accepted here. "
                         "Trim it to the part you want to work on.")
    if channels is not None and channels > MAX_CHANNELS:
        raise ValueError(f"{path.name} has {channels} channels; at most {MAX_CHANNELS} are supported.")
    audio, sample_rate = _decode(path)
    check_sample_rate_range(sample_rate, path.name)
    if audio.size == 0:
        raise ValueError(f"{path.name} holds no samples.")
    if audio.shape[0] > MAX_CHANNELS:
        raise ValueError(f"{path.name} has {audio.shape[0]} channels; at most {MAX_CHANNELS} are supported.")
    if not np.isfinite(audio).all():
        raise ValueError(f"{path.name} contains NaN or infinite samples.")
    if not allow_silence:
        check_not_silent(audio, path.name)
    if mono:
        audio = mixdown(audio)[None]
    if target_rate is not None and target_rate != sample_rate:
        audio, sample_rate = resample(audio, sample_rate, target_rate), int(target_rate)
    return np.ascontiguousarray(audio, dtype=np.float32), int(sample_rate)


def to_mono(audio: np.ndarray | torch.Tensor) -> np.ndarray:
    """Float32 mono mixdown of `[samples]`, `[channels, samples]` or `[samples, channels]` audio.

    A 2-D array's channel axis is its shorter one (soundfile gives `[samples, channels]`,
    torch code `[channels, samples]`).
    """
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().float().cpu().numpy()
    audio = np.asarray(audio)
    if not np.issubdtype(audio.dtype, np.number):
        raise ValueError(f"Audio must be numeric samples, got dtype {audio.dtype}.")
    if np.issubdtype(audio.dtype, np.integer):
        # Integer PCM (e.g. Gradio's int16 microphone input): scale to [-1, 1].
        audio = audio.astype(np.float32) / np.iinfo(audio.dtype).max
    audio = audio.astype(np.float32, copy=False)
    if audio.ndim == 1:
        return audio
    if audio.ndim != 2:
        raise ValueError(f"Audio must be 1-D [samples] or 2-D [channels, samples], got shape {audio.shape}.")
    channel_axis = int(np.argmin(audio.shape))
    channels = audio.shape[channel_axis]
    if channels > MAX_CHANNELS:
        raise ValueError(f"Audio has {channels} channels; at most {MAX_CHANNELS} are supported (shape {audio.shape}).")
    return audio.mean(axis=channel_axis)


def prepare_audio(
    audio: np.ndarray | torch.Tensor,
    sampling_rate: int | None,
    target_sample_rate: int,
    max_seconds: float | None = None,
) -> np.ndarray:
    """Check input audio and return it as float32 mono at `target_sample_rate` Hz.

    Raises:
        ValueError: naming the problem, for empty audio, NaN or infinite samples, more than
            `MAX_CHANNELS` channels, a missing or implausible sample rate, or audio longer than
            `max_seconds` seconds.
    """
    if audio is None:
        raise ValueError("No audio given.")
    check_sample_rate_range(sampling_rate)
    mono = to_mono(audio)
    if mono.size == 0:
        raise ValueError("Audio is empty (0 samples).")
    if not np.isfinite(mono).all():
        raise ValueError("Audio contains NaN or infinite samples.")
    seconds = mono.size / float(sampling_rate)
    if max_seconds is not None and seconds > max_seconds:
        raise ValueError(f"Audio is {seconds:.1f} s long; at most {max_seconds:.1f} s is supported.")
    if int(sampling_rate) != target_sample_rate:
        mono = resample(mono, int(sampling_rate), target_sample_rate)
    if silence_level(mono) is not None:
        logger.warning("Input audio is silent (peak below -80 dBFS); the result will not resemble anything.")
    return np.ascontiguousarray(mono, dtype=np.float32)


def load_audio(path: str | Path, target_sample_rate: int, max_seconds: float | None = None) -> np.ndarray:
    """Read an audio file as float32 mono `[samples]` at `target_sample_rate` Hz (training data: silent
    files are returned, with `prepare_audio`'s warning, for the caller's own silence handling)."""
    audio, sampling_rate = read_audio(path, mono=True, max_seconds=max_seconds, allow_silence=True)
    return prepare_audio(audio[0], sampling_rate, target_sample_rate)


def prepare_audio_channels(
    audio: np.ndarray | torch.Tensor,
    sampling_rate: int | None,
    target_sample_rate: int,
    channels: int,
    max_seconds: float | None = None,
) -> np.ndarray:
    """Check input audio and return it as float32 `[channels, samples]` at `target_sample_rate` Hz,
    for multichannel models: the same checks as `prepare_audio`; audio with `channels` channels keeps
    them, anything else is mixed to mono and copied to every channel.
    """
    mono = prepare_audio(audio, sampling_rate, target_sample_rate, max_seconds)  # the checks, once
    array = audio.detach().float().cpu().numpy() if isinstance(audio, torch.Tensor) else np.asarray(audio)
    if array.ndim == 2 and min(array.shape) == channels and channels > 1:
        if np.issubdtype(array.dtype, np.integer):
            array = array.astype(np.float32) / np.iinfo(array.dtype).max
        layered = array.astype(np.float32) if array.shape[0] == channels else array.T.astype(np.float32)
        if int(sampling_rate) != target_sample_rate:
            layered = resample(layered, int(sampling_rate), target_sample_rate)
        return np.ascontiguousarray(layered, dtype=np.float32)
    return np.ascontiguousarray(np.repeat(mono[None], channels, axis=0), dtype=np.float32)
