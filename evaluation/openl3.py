"""OpenL3 (Cramer et al., ICASSP 2019), music / mel256 / 512-d, ported from the `openl3` package's
Keras model to torch: 48 kHz mono, 1 s windows every 0.5 s (the first centred on 0 s, as
`openl3.get_audio_embedding(center=True)`), one 512-d vector per window, mean over windows.
stable-audio-metrics computes its OpenL3 FD with this model (content_type="music",
input_repr="mel256", embedding_size=512); it can also embed the two stereo channels separately,
which this port does not (clips are mixed to mono).

Front end (Kapre 0.1 `Melspectrogram` as configured by openl3): zero padding of 982 samples on
each side (Keras "same" for a 2048-tap, 242-hop convolution over 48,000 samples: 199 frames), Hann
window, magnitude STFT (2048 points), 256 HTK mel bands 0-24 kHz with Slaney area normalisation,
10 log10 floored at 1e-10, minus the window's maximum, floored at -80 dB. Network: BatchNorm, four
blocks of two 3x3 convolutions (64, 128, 256, 512; BatchNorm + ReLU after each but the last, the
`audio_embedding_layer`), 2x2 max pooling between blocks, then a max over the remaining 32 x 24
grid.

Weights: OpenL3 is released as Keras `.h5` files only. `python -m evaluation.convert_openl3` turns
`openl3_audio_mel256_music.h5` (shipped inside the `openl3` wheel) into a safetensors file that
this module loads; the port has not been checked against the Keras model here (no TensorFlow), so
the conversion script compares both when it can import `openl3` and says so when it cannot.
"""

from __future__ import annotations

import warnings

import librosa
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

SAMPLE_RATE = 48000
WINDOW_SAMPLES = 48000  # 1 s
HOP_SECONDS = 0.5
N_FFT = 2048
FFT_HOP = 242
N_MELS = 256
SAME_PADDING = 982  # ((199 - 1) * 242 + 2048 - 48000) / 2
DYNAMIC_RANGE_DB = 80.0
KERAS_BN_EPS = 1e-3


def openl3_frames(waveform: np.ndarray, hop_seconds: float = HOP_SECONDS) -> np.ndarray:
    """Mono 48 kHz waveform -> `[windows, 48000]` 1 s windows, centred padding as openl3 does."""
    padded = np.pad(np.asarray(waveform, dtype=np.float32), (WINDOW_SAMPLES // 2, 0))
    hop = round(hop_seconds * SAMPLE_RATE)
    if len(padded) < WINDOW_SAMPLES:
        padded = np.pad(padded, (0, WINDOW_SAMPLES - len(padded)))
    count = 1 + (len(padded) - WINDOW_SAMPLES) // hop
    index = np.arange(WINDOW_SAMPLES)[None, :] + hop * np.arange(count)[:, None]
    return padded[index]


class OpenL3Music(nn.Module):
    """The mel256 audio network. `widths` shrinks it for tests (64, 128, 256, 512 by default)."""

    def __init__(self, widths: tuple[int, ...] = (64, 128, 256, 512)) -> None:
        super().__init__()
        with warnings.catch_warnings():
            # 256 HTK bands over 1025 bins leave the lowest bands empty; Kapre's matrix does too
            warnings.simplefilter("ignore", UserWarning)
            mel = librosa.filters.mel(
                sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=0.0, fmax=SAMPLE_RATE / 2, htk=True
            )
        self.register_buffer(
            "mel_filters", torch.from_numpy(mel.astype(np.float32)), persistent=False
        )
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)
        self.bn0 = nn.BatchNorm2d(1, eps=KERAS_BN_EPS)
        channels = [1]
        for width in widths:
            channels += [width, width]
        self.convs = nn.ModuleList(
            nn.Conv2d(channels[i], channels[i + 1], 3, padding=1) for i in range(8)
        )
        self.bns = nn.ModuleList(
            nn.BatchNorm2d(channels[i + 1], eps=KERAS_BN_EPS) for i in range(7)
        )

    def log_mel(self, windows: torch.Tensor) -> torch.Tensor:
        """`[batch, 48000]` -> `[batch, 1, 256, 199]` dB relative to each window's maximum."""
        padded = F.pad(windows, (SAME_PADDING, SAME_PADDING))
        spec = torch.stft(
            padded, N_FFT, FFT_HOP, window=self.window, center=False, return_complex=True
        ).abs()
        db = 10.0 * torch.log10(torch.matmul(self.mel_filters, spec).clamp_min(1e-10))
        db = db - db.amax(dim=(1, 2), keepdim=True)
        return db.clamp_min(-DYNAMIC_RANGE_DB)[:, None]

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """`[batch, 48000]` 1 s windows -> `[batch, 512]` embeddings."""
        x = self.bn0(self.log_mel(windows))
        for index, conv in enumerate(self.convs):
            x = conv(x)
            if index < 7:
                x = F.relu(self.bns[index](x))
            if index in (1, 3, 5):
                x = F.max_pool2d(x, 2, 2)
        return x.amax(dim=(2, 3))
