"""Put a model's output back into the input's own format: audio-to-audio results at the uploaded
file's sample rate and channels, with the parts the model did not change copied from the input.

The mel models work at 16 kHz mono. Without this, a 44.1 kHz stereo upload came back 16 kHz mono,
7.4 kHz wide and quieter even where it was meant to be kept. `splice_into_input`:

1. resamples the model's output to the input's rate (soxr) and gives it the input's channels
   (mono duplicated);
2. scales what the model made to the input's loudness: the gain that makes the model's rendition of
   the kept parts as loud as the input there (the vocoder's own level loss), or, with nothing kept
   (a variation), the gain that matches the whole clip's RMS;
3. copies the kept regions (inpainting's outside, outpainting's inside, the clip before a
   continuation) from the input sample for sample, with short equal-power crossfades placed on the
   regenerated side so that every kept sample is the input's own.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from music.audio import resample
from music.export import as_channels_first, match_channels

DEFAULT_CROSSFADE_IN_S = 0.010
# Gains outside this range mean one side is near-silent; the gain is clamped (dB).
MAX_GAIN_DB = 24.0


def _rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0


def kept_mask(num_samples: int, sample_rate: int, keep_regions_in_s: Sequence[tuple[float, float]]) -> np.ndarray:
    """Boolean `[num_samples]`: True inside any of the (start, end) regions in seconds."""
    mask = np.zeros(num_samples, dtype=bool)
    for start, end in keep_regions_in_s:
        mask[max(0, round(start * sample_rate)) : min(num_samples, round(end * sample_rate))] = True
    return mask


def loudness_gain(original: np.ndarray, rendition: np.ndarray) -> float:
    """Linear gain that makes `rendition` as loud (RMS) as `original`, clamped to +-`MAX_GAIN_DB`."""
    target, level = _rms(original), _rms(rendition)
    if target == 0 or level == 0:
        return 1.0
    limit = 10 ** (MAX_GAIN_DB / 20)
    return float(np.clip(target / level, 1 / limit, limit))


def _boundary_fades(mask: np.ndarray, crossfade: int) -> np.ndarray:
    """Weight of the input per sample: 1 on kept samples, falling to 0 over `crossfade` samples into
    the regenerated side of each boundary (equal-power), 0 elsewhere."""
    weight = mask.astype(np.float64)
    if crossfade <= 0:
        return weight
    ramp = np.cos(0.5 * np.pi * np.arange(1, crossfade + 1) / (crossfade + 1))  # just below 1 -> near 0
    changes = np.nonzero(np.diff(mask.astype(np.int8)))[0]
    for index in changes:  # boundary between samples index and index + 1
        if mask[index]:  # kept -> regenerated: fade out after it
            span = slice(index + 1, min(len(mask), index + 1 + crossfade))
            weight[span] = np.maximum(weight[span], ramp[: span.stop - span.start])
        else:  # regenerated -> kept: fade in before it
            span = slice(max(0, index + 1 - crossfade), index + 1)
            weight[span] = np.maximum(weight[span], ramp[::-1][crossfade - (span.stop - span.start):])
    return weight


def splice_into_input(
    generated: np.ndarray,
    generated_rate: int,
    original: np.ndarray,
    original_rate: int,
    keep_regions_in_s: Sequence[tuple[float, float]] | None = None,
    crossfade_in_s: float = DEFAULT_CROSSFADE_IN_S,
) -> np.ndarray:
    """The model's output at the input's rate and channels, loudness-matched, kept regions copied.

    Args:
        generated: model output, `[samples]` or `[channels, samples]` at `generated_rate` Hz; the same
            timeline as the input (a continuation's output starts with the input).
        original: the input as the file held it, `[samples]` or `[channels, samples]` at
            `original_rate` Hz.
        keep_regions_in_s: (start, end) seconds of the input the model kept (a continuation keeps
            (0, input length)); None or empty for a variation.
        crossfade_in_s: fades between kept and regenerated audio, on the regenerated side.

    Returns:
        float32 `[channels of the input, samples]` at `original_rate`, as long as the model's output
        (rounded to the input's rate; exactly the input's length when the model kept its length).
    """
    original = as_channels_first(original)
    channels = original.shape[0]
    # 1. Rate and channels
    output = match_channels(resample(as_channels_first(generated), generated_rate, original_rate), channels)
    length = round(as_channels_first(generated).shape[-1] * original_rate / generated_rate)
    if abs(length - original.shape[-1]) <= max(1, original_rate // generated_rate):
        length = original.shape[-1]  # the model kept the input's length: keep it to the sample
    output = np.pad(output, ((0, 0), (0, max(0, length - output.shape[-1]))))[:, :length]
    overlap = min(length, original.shape[-1])
    mask = kept_mask(length, original_rate, keep_regions_in_s or [])
    mask[overlap:] = False
    # 2. Loudness
    if mask.any():
        gain = loudness_gain(original[:, :overlap][:, mask[:overlap]], output[:, mask])
    else:
        gain = loudness_gain(original[:, :overlap], output[:, :overlap])
    output = np.clip(output * gain, -1.0, 1.0)
    # 3. Kept regions from the input
    if mask.any():
        weight = _boundary_fades(mask, round(crossfade_in_s * original_rate))[:overlap]
        blended = weight * original[:, :overlap] + np.sqrt(np.clip(1 - weight**2, 0, 1)) * output[:, :overlap]
        blended[:, mask[:overlap]] = original[:, :overlap][:, mask[:overlap]]  # exactly the input's samples
        output[:, :overlap] = blended
    return output.astype(np.float32)
