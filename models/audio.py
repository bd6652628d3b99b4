"""Audio coming into the models: checked, mixed down to mono and resampled to the model's rate (Hz)."""
from __future__ import annotations

import logging
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf
import torch

logger = logging.getLogger(__name__)

MAX_CHANNELS = 8
MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 384_000


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
    if sampling_rate is None or not np.isscalar(sampling_rate) or not (
        MIN_SAMPLE_RATE <= float(sampling_rate) <= MAX_SAMPLE_RATE
    ):
        raise ValueError(
            f"Audio sample rate must be between {MIN_SAMPLE_RATE} and {MAX_SAMPLE_RATE} Hz, got {sampling_rate!r}."
        )
    mono = to_mono(audio)
    if mono.size == 0:
        raise ValueError("Audio is empty (0 samples).")
    if not np.isfinite(mono).all():
        raise ValueError("Audio contains NaN or infinite samples.")
    seconds = mono.size / float(sampling_rate)
    if max_seconds is not None and seconds > max_seconds:
        raise ValueError(f"Audio is {seconds:.1f} s long; at most {max_seconds:.1f} s is supported.")
    if int(sampling_rate) != target_sample_rate:
        mono = librosa.resample(mono, orig_sr=int(sampling_rate), target_sr=target_sample_rate, res_type="soxr_hq")
    if np.abs(mono).max() < 1e-5:
        logger.warning("Input audio is silent (peak below -100 dBFS); the result will not resemble anything.")
    return np.ascontiguousarray(mono, dtype=np.float32)


def load_audio(path: str | Path, target_sample_rate: int, max_seconds: float | None = None) -> np.ndarray:
    """Read an audio file (wav, flac, ogg, mp3, ...) as float32 mono at `target_sample_rate` Hz."""
    path = Path(path)
    try:
        audio, sampling_rate = sf.read(path, dtype="float32", always_2d=True)
    except (RuntimeError, OSError):  # soundfile lacks some codecs (older libsndfile: mp3): librosa tries.
        try:
            audio, sampling_rate = librosa.load(path, sr=None, mono=False)
        except Exception as error:
            raise ValueError(f"Cannot read audio file {path.name}: {error}") from error
    return prepare_audio(audio, sampling_rate, target_sample_rate, max_seconds)



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
            layered = librosa.resample(layered, orig_sr=int(sampling_rate), target_sr=target_sample_rate,
                                       res_type="soxr_hq", axis=-1)
        return np.ascontiguousarray(layered, dtype=np.float32)
    return np.ascontiguousarray(np.repeat(mono[None], channels, axis=0), dtype=np.float32)
