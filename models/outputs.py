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
        audios_before_stretch: tempo-normalised models asked for another tempo: the same takes as the model
            made them at its reference tempo, before the time-stretch (None when nothing was stretched). A
            quality gate judges these: it is calibrated on unstretched real clips, and Rubber Band lowers a
            noise wash's spectral flatness (a wash at 0.48 reads 0.30 stretched to 90 BPM, under the 0.40
            limit, while it looks and sounds as washed).
    """

    audios: np.ndarray
    sample_rate: int
    images: list[PIL.Image.Image] = field(default_factory=list)
    audios_before_stretch: np.ndarray | None = None
