"""Spectrogram pictures for the page: the models' 8-bit grey mel images coloured with a perceptual
palette and stretched to a readable height (low frequencies at the bottom, time left to right)."""
from __future__ import annotations

import numpy as np
import PIL.Image

from music.spectrogram import mel_image

MIN_HEIGHT_IN_PX = 160
MIN_WIDTH_IN_PX = 512
MAX_WIDTH_IN_PX = 2048
# Anchor colours of a magma-like palette (black -> purple -> orange -> pale yellow), 0..255 each.
_ANCHORS = np.array(
    [[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21], [250, 193, 39],
     [252, 255, 164]],
    dtype=np.float64,
)
_PALETTE = np.stack(
    [np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(_ANCHORS)), _ANCHORS[:, channel]) for channel in range(3)],
    axis=1,
).astype(np.uint8)


def colorize(image: PIL.Image.Image) -> PIL.Image.Image:
    """An RGB picture of a grey spectrogram, at least `MIN_HEIGHT_IN_PX` high and `MIN_WIDTH_IN_PX` wide,
    at most `MAX_WIDTH_IN_PX` wide (stretched nearest-neighbour, so bins stay sharp)."""
    grey = np.asarray(image.convert("L"))
    picture = PIL.Image.fromarray(_PALETTE[grey])
    width, height = picture.size
    new_height = height * max(1, -(-MIN_HEIGHT_IN_PX // max(height, 1)))
    new_width = min(MAX_WIDTH_IN_PX, max(width, MIN_WIDTH_IN_PX))
    if (new_width, new_height) != (width, height):
        picture = picture.resize((new_width, new_height), PIL.Image.Resampling.NEAREST)
    return picture


def spectrogram_of(audio: np.ndarray, sample_rate: int) -> PIL.Image.Image:
    """Coloured mel spectrogram of a waveform (`[samples]` or `[channels, samples]`, mixed to mono)."""
    return colorize(mel_image(np.atleast_2d(audio), sample_rate))
