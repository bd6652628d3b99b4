"""What every generation backend returns: waveforms, their sample rate and display spectrograms."""
from dataclasses import dataclass, field

import numpy as np
import PIL.Image
from diffusers.utils import BaseOutput


@dataclass
class GeneratedAudio(BaseOutput):
    """Output of all pipelines and backends in `models/`.

    Attributes:
        audios: float32 waveforms in [-1, 1], shape `[batch, channels, samples]`
            (mel pipelines are mono: `channels == 1`).
        sample_rate: sample rate of `audios` in Hz.
        images: one 8-bit mel spectrogram picture per waveform, for display only.
    """

    audios: np.ndarray
    sample_rate: int
    images: list[PIL.Image.Image] = field(default_factory=list)
