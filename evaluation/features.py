"""Log-mel spectrograms in torch for evaluation: batched, deterministic, in dB (frames of `hop_length` samples).

Shared by the `mel-stats` embedder, the `clap-bundled` audio tower and the memorization copy detector.
It is separate from `models/mel.py` on purpose: that one maps spectrograms to [-1, 1] images of a
fixed width for diffusion, while evaluation needs absolute dB levels and any number of frames.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import librosa
import numpy as np
import torch
from torch import nn


class LogMel(nn.Module):
    """Waveforms `[batch, samples]` at `sample_rate` Hz -> log-mel `[batch, n_mels, frames]` in dB.

    Frames are centred (`frames = samples // hop_length + 1`); power is floored at `-amin_db` dB
    (re. full-scale 1.0), so silence gives a finite value rather than `-inf`.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 1024,
        hop_length: int = 320,
        n_mels: int = 64,
        fmin_hz: float = 20.0,
        fmax_hz: float | None = None,
        amin_db: float = 100.0,
    ) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.amin_db = amin_db
        filters = librosa.filters.mel(
            sr=sample_rate,
            n_fft=n_fft,
            n_mels=n_mels,
            fmin=fmin_hz,
            fmax=fmax_hz or sample_rate / 2,
        )
        self.register_buffer(
            "mel_filters", torch.from_numpy(filters.astype(np.float32)), persistent=False
        )
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for a clip of `num_samples` samples."""
        return num_samples // self.hop_length + 1

    @torch.no_grad()
    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        """`[batch, samples]` float waveforms -> `[batch, n_mels, frames]` dB (float32)."""
        if waveforms.dim() == 1:
            waveforms = waveforms[None]
        waveforms = waveforms.float()
        if waveforms.shape[-1] < self.n_fft // 2 + 1:
            # reflect padding in torch.stft needs at least n_fft/2 + 1 samples
            waveforms = nn.functional.pad(waveforms, (0, self.n_fft // 2 + 1 - waveforms.shape[-1]))
        spec = torch.stft(
            waveforms,
            self.n_fft,
            self.hop_length,
            window=self.window,
            center=True,
            return_complex=True,
        )
        power = spec.real.square() + spec.imag.square()
        mel = torch.matmul(self.mel_filters, power)
        floor = 10.0 ** (-self.amin_db / 10.0)
        return 10.0 * torch.log10(mel.clamp_min(floor))


@contextlib.contextmanager
def limit_threads(count: int = 1) -> Iterator[None]:
    """Run a block with at most `count` threads in torch and in the BLAS under numpy, then restore.

    Many small ops (per-clip spectrograms, bootstrap eigendecompositions) are dominated by thread
    hand-offs on a busy CPU: measured on the shared 2-core machine, a 5 s clip's log-mel took 110 ms
    with 2 torch threads and 1.5 ms with one; a 168-d FAD 308 ms vs 17 ms with 1 OpenBLAS thread.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # optional: only numpy's BLAS threads stay as they are
            yield
        else:
            with threadpool_limits(count):
                yield
    finally:
        torch.set_num_threads(previous)
