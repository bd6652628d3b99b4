"""Spectrogram pictures for display: an 8-bit grey mel spectrogram of any clip (the model's own mel
"image" is `models.mel.Mel`; this one only shows a result to a person)."""
from __future__ import annotations

import math

import librosa
import numpy as np
import PIL.Image

# Display spectrograms: the loudest bin is white, `_MEL_TOP_DB` below it or quieter is black.
_MEL_N_FFT = 2048
_MEL_N_MELS = 128
_MEL_TOP_DB = 80.0
_MEL_AMIN = 1e-10  # smallest power kept before taking logs (librosa's default)


def mel_image(waveform: np.ndarray, sample_rate: int) -> PIL.Image.Image:
    """8-bit grey mel spectrogram of `waveform` (`[channels, samples]`, mixed to mono) for display.

    Low frequencies at the bottom; white is the loudest bin, black `_MEL_TOP_DB` dB below it.
    """
    mono = np.asarray(waveform, dtype=np.float32).reshape(-1, np.shape(waveform)[-1]).mean(axis=0)
    # Short clips get a shorter FFT (and fewer bands) so that no mel band is empty.
    n_fft = min(_MEL_N_FFT, 2 ** max(5, int(math.log2(max(len(mono), 1)))))
    n_mels = min(_MEL_N_MELS, n_fft // 16)
    power = librosa.feature.melspectrogram(
        y=mono, sr=sample_rate, n_fft=n_fft, hop_length=n_fft // 4, n_mels=n_mels
    )
    if power.max() <= _MEL_AMIN:  # silence: black, not "0 dB relative to itself"
        return PIL.Image.fromarray(np.zeros(power.shape, dtype=np.uint8))
    decibels = librosa.power_to_db(power, ref=np.max, amin=_MEL_AMIN, top_db=_MEL_TOP_DB)
    pixels = np.clip((decibels + _MEL_TOP_DB) / _MEL_TOP_DB * 255.0, 0, 255).astype(np.uint8)
    return PIL.Image.fromarray(np.ascontiguousarray(pixels[::-1]))
