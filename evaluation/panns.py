"""PANN Cnn14 (Kong et al., "PANNs", IEEE/ACM TASLP 2020) in torch, with parameter names of the
authors' `audioset_tagging_cnn` code so their released checkpoints load as they are. Whole clip in,
one 2048-d embedding out (the input of the AudioSet classifier), as the `frechet-audio-distance`
package uses it.

Front end: power STFT (Hann, centred, reflect padding), librosa Slaney mel filters, 10 log10(mel)
floored at 1e-10, then a BatchNorm over mel bands. Settings per checkpoint (`PANN_CHECKPOINTS`):
32 kHz (window 1024, hop 320, 50-14000 Hz) and 16 kHz (window 512, hop 160, 50-8000 Hz), 64 bands.
The STFT is `torch.stft` instead of torchlibrosa's convolution (same transform; the checkpoint's
`spectrogram_extractor.*` DFT matrices are therefore not loaded), and the mel matrix is the
checkpoint's own `logmel_extractor.melW`.

Weights: Zenodo record 3987831 (`Cnn14_mAP=0.431.pth`, `Cnn14_16k_mAP=0.438.pth`), fetched by
torch.hub and cached in its folder.
"""

from __future__ import annotations

from dataclasses import dataclass

import librosa
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class PannSettings:
    sample_rate: int
    window_size: int
    hop_size: int
    fmin_hz: float
    fmax_hz: float
    url: str
    mel_bins: int = 64


PANN_CHECKPOINTS = {
    32000: PannSettings(
        32000,
        1024,
        320,
        50.0,
        14000.0,
        "https://zenodo.org/record/3987831/files/Cnn14_mAP%3D0.431.pth",
    ),
    16000: PannSettings(
        16000,
        512,
        160,
        50.0,
        8000.0,
        "https://zenodo.org/record/3987831/files/Cnn14_16k_mAP%3D0.438.pth",
    ),
}
MIN_FRAMES = 32  # five 2x2 poolings need at least 32 frames (0.2-0.3 s); shorter clips are padded


class ConvBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm and ReLU, then average pooling."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor, pool_size: tuple[int, int]) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, pool_size)


class Cnn14(nn.Module):
    """Cnn14 up to its 2048-d embedding; `widths` shrinks it for tests (released model by default)."""

    def __init__(
        self,
        settings: PannSettings,
        widths: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048),
        classes: int = 527,
    ) -> None:
        super().__init__()
        self.settings = settings
        mel = librosa.filters.mel(
            sr=settings.sample_rate,
            n_fft=settings.window_size,
            n_mels=settings.mel_bins,
            fmin=settings.fmin_hz,
            fmax=settings.fmax_hz,
        ).T  # [bins, mels], as torchlibrosa stores melW
        self.logmel_extractor = nn.Module()
        self.logmel_extractor.melW = nn.Parameter(torch.from_numpy(mel.astype(np.float32)))
        self.register_buffer("window", torch.hann_window(settings.window_size), persistent=False)
        self.bn0 = nn.BatchNorm2d(settings.mel_bins)
        channels = [1, *widths]
        for index in range(6):
            setattr(self, f"conv_block{index + 1}", ConvBlock(channels[index], channels[index + 1]))
        self.fc1 = nn.Linear(widths[-1], widths[-1])
        self.fc_audioset = nn.Linear(widths[-1], classes)

    def log_mel(self, waveforms: torch.Tensor) -> torch.Tensor:
        """`[batch, samples]` -> `[batch, 1, frames, mels]` in dB (10 log10 power, floor 1e-10)."""
        s = self.settings
        spec = torch.stft(
            waveforms,
            s.window_size,
            s.hop_size,
            window=self.window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )
        power = spec.real.square() + spec.imag.square()  # [batch, bins, frames]
        mel = torch.matmul(power.transpose(1, 2), self.logmel_extractor.melW)
        return (10.0 * torch.log10(mel.clamp_min(1e-10)))[:, None]

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        """`[batch, samples]` at the checkpoint's rate -> `[batch, 2048]` embeddings."""
        min_samples = (MIN_FRAMES - 1) * self.settings.hop_size
        if waveforms.shape[-1] < min_samples:
            waveforms = F.pad(waveforms, (0, min_samples - waveforms.shape[-1]))
        x = self.log_mel(waveforms)
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)
        for index in range(6):
            x = getattr(self, f"conv_block{index + 1}")(x, (2, 2) if index < 5 else (1, 1))
        x = x.mean(dim=3)  # over mel bands
        x = x.max(dim=2).values + x.mean(dim=2)  # over time
        return F.relu(self.fc1(x))


def load_cnn14_state(model: Cnn14, checkpoint: dict) -> None:
    """Load an `audioset_tagging_cnn` checkpoint (`{"model": state_dict}` or a bare state dict);
    every parameter of `model` must be present with its shape (strict, except the unused STFT
    matrices)."""
    state = checkpoint.get("model", checkpoint)
    state = {k: v for k, v in state.items() if not k.startswith("spectrogram_extractor.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"not a Cnn14 checkpoint: missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
        )
