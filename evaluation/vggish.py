"""VGGish (Hershey et al., ICASSP 2017) in torch: the network, log-mel front end and PCA of Google's
TensorFlow release, as ported by torchvggish (harritaylor/torchvggish) and used by the
`frechet-audio-distance` package. 16 kHz mono in, one 128-d vector per 0.96 s example out.

Front end (`vggish_log_mel_examples`, as `vggish_input.waveform_to_examples`): 25 ms periodic-Hann
frames every 10 ms, |FFT| (512 points), 64 HTK-mel bands 125-7500 Hz, log(mel + 0.01), cut into
non-overlapping 96-frame (0.96 s) examples. Network: VGG-style convolutions (64-128-256-256-512-512,
4 max-pools) then fully connected 12288-4096-4096-128. FAD practice (Google's FAD and the
`frechet-audio-distance` package's defaults) uses the 128-d output before the final ReLU and
without PCA; `postprocess=True` applies the released PCA whitening and 8-bit quantisation
(AudioSet's published embeddings).

Weights: the torchvggish release files (converted from Google's TensorFlow checkpoint),
`vggish-10086976.pth` and `vggish_pca_params-970ea276.pth`, fetched by torch.hub and cached in
its folder (`~/.cache/torch/hub/checkpoints`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

VGGISH_WEIGHTS_URL = (
    "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth"
)
VGGISH_PCA_URL = "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish_pca_params-970ea276.pth"
SAMPLE_RATE = 16000
WINDOW_SAMPLES = 400  # 25 ms
HOP_SAMPLES = 160  # 10 ms
FFT_SIZE = 512
NUM_BANDS = 64
EXAMPLE_FRAMES = 96  # 0.96 s
LOG_OFFSET = 0.01
MIN_SAMPLES = WINDOW_SAMPLES + (EXAMPLE_FRAMES - 1) * HOP_SAMPLES  # 15,600 = 0.975 s


def hertz_to_mel(hertz: np.ndarray) -> np.ndarray:
    """HTK mel scale, as VGGish's `mel_features.hertz_to_mel`."""
    return 1127.0 * np.log(1.0 + np.asarray(hertz, dtype=np.float64) / 700.0)


def vggish_mel_matrix(
    num_bands: int = NUM_BANDS,
    num_spectrogram_bins: int = FFT_SIZE // 2 + 1,
    sample_rate: int = SAMPLE_RATE,
    lower_hz: float = 125.0,
    upper_hz: float = 7500.0,
) -> np.ndarray:
    """`[num_spectrogram_bins, num_bands]` triangular HTK-mel weights, unnormalised, DC bin zero.

    Hand-written rather than librosa's because VGGish's triangles are built in the mel domain
    on the FFT bin centres (not librosa's Hz-domain slopes), and the weights must match."""
    bins_mel = hertz_to_mel(np.linspace(0.0, sample_rate / 2, num_spectrogram_bins))
    edges = np.linspace(hertz_to_mel(lower_hz), hertz_to_mel(upper_hz), num_bands + 2)
    weights = np.empty((num_spectrogram_bins, num_bands))
    for band in range(num_bands):
        lower, centre, upper = edges[band : band + 3]
        rising = (bins_mel - lower) / (centre - lower)
        falling = (upper - bins_mel) / (upper - centre)
        weights[:, band] = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0
    return weights


def vggish_log_mel_examples(waveform: np.ndarray) -> torch.Tensor:
    """Mono 16 kHz waveform -> `[examples, 1, 96, 64]` log-mel examples (float32).

    Clips shorter than one example (0.975 s) are zero-padded to one, so every clip gets a vector."""
    waveform = np.asarray(waveform, dtype=np.float64)
    if len(waveform) < MIN_SAMPLES:
        waveform = np.pad(waveform, (0, MIN_SAMPLES - len(waveform)))
    num_frames = 1 + (len(waveform) - WINDOW_SAMPLES) // HOP_SAMPLES
    index = np.arange(WINDOW_SAMPLES)[None, :] + HOP_SAMPLES * np.arange(num_frames)[:, None]
    periodic_hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WINDOW_SAMPLES) / WINDOW_SAMPLES)
    magnitude = np.abs(np.fft.rfft(waveform[index] * periodic_hann, FFT_SIZE))
    log_mel = np.log(magnitude @ vggish_mel_matrix() + LOG_OFFSET)
    num_examples = len(log_mel) // EXAMPLE_FRAMES
    examples = log_mel[: num_examples * EXAMPLE_FRAMES].reshape(
        num_examples, 1, EXAMPLE_FRAMES, NUM_BANDS
    )
    return torch.from_numpy(examples.astype(np.float32))


class VGGish(nn.Module):
    """The VGGish network; parameter names match torchvggish's state dict (`features.N`,
    `embeddings.N`). `widths` shrinks it for tests (the released model is the default)."""

    def __init__(
        self,
        widths: tuple[int, ...] = (64, 128, 256, 256, 512, 512),
        hidden: int = 4096,
        embedding_size: int = 128,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        pools_after = {0, 1, 3, 5}  # VGG-A layout: 64 M 128 M 256 256 M 512 512 M
        for index, width in enumerate(widths):
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
            if index in pools_after:
                layers.append(nn.MaxPool2d(2, 2))
            channels = width
        self.features = nn.Sequential(*layers)
        self.embeddings = nn.Sequential(
            nn.Linear(channels * 6 * 4, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, embedding_size),
            nn.ReLU(inplace=True),
        )
        self.register_buffer("pca_eigen_vectors", torch.eye(embedding_size), persistent=False)
        self.register_buffer("pca_means", torch.zeros(embedding_size), persistent=False)

    def forward(self, examples: torch.Tensor, final_relu: bool = False) -> torch.Tensor:
        """`[examples, 1, 96, 64]` -> `[examples, 128]`; the final ReLU only when asked."""
        x = self.features(examples)
        # flatten in TensorFlow's NHWC order, as the converted fully connected weights expect
        x = x.permute(0, 2, 3, 1).reshape(len(x), -1)
        x = self.embeddings[:-1](x)
        return torch.relu(x) if final_relu else x

    def postprocess(self, embeddings: torch.Tensor) -> torch.Tensor:
        """The released PCA whitening, clip to [-2, 2] and 8-bit quantisation (AudioSet format),
        returned as float values 0-255."""
        projected = (embeddings - self.pca_means) @ self.pca_eigen_vectors.T
        return torch.round((projected.clamp(-2.0, 2.0) + 2.0) * (255.0 / 4.0))

    def load_pca(self, params: dict) -> None:
        self.pca_eigen_vectors = torch.as_tensor(params["pca_eigen_vectors"], dtype=torch.float32)
        self.pca_means = torch.as_tensor(params["pca_means"], dtype=torch.float32).reshape(-1)
