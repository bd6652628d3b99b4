"""Beat activation: a small learned network that says, per onset-envelope frame, how likely a beat starts there.

The tempo estimator (`music.tempo`) can read each candidate tempo's fit to this activation (`activation_features`):
how sharply it folds at the candidate's period and its metrical relatives, its autocorrelation at the candidate's
lag against the half and double lag, and its peaks per candidate beat. This is what the field does (Böck et al.'s
TCN beat trackers; Schreiber & Müller's tempo CNN), written here because no offline beat tracker with its weights
installs in this project: madmom does not build on numpy 2, and beat_this downloads its checkpoint from a hub.

The network is a non-causal temporal convolution network (TCN) over the per-frame inputs of `activation_inputs`
(the four onset envelopes of `music.tempo.tempo_envelopes`, the level and a harmony novelty, one frame per
`music.tempo.onset_hop_samples` hop): a 1x1 input convolution, residual blocks of dilated 3-tap convolutions
(dilations doubling, ELU), a 1x1 output convolution and a sigmoid. It is learned by
`python -m benchmarks.learn_beat_activation` from labelled corpus clips (the generated clips start on a beat and
their BPM label is exact, so the beat times are known) and stored as float32 weights (an npz of about 17 kB);
inference here is plain numpy (a few ms a clip). A network learned with `--downbeats` has a second output, the
downbeat activation (the clips start on a bar line, in 4/4), read per candidate by `downbeat_features`.
Not shipped: its candidate features did not improve the tempo network on the valid clips
(`python -m benchmarks.compare_beat_features`; README, issue 23, eighth and ninth passes).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from music.tempo import harmony_novelty, smoothed_fold

# Input channels of `activation_inputs`: four onset envelopes, the level, the harmony novelty.
INPUT_CHANNELS = 6
# Candidate ratios the activation is folded at (`activation_features`): the tempo, its double, half, 3:2, 2:3.
ACTIVATION_RATIOS = (1.0, 2.0, 0.5, 1.5, 2 / 3)
# Bar lengths in candidate beats the downbeat activation is folded at (`downbeat_features`).
BAR_BEATS = (2.0, 4.0)
# An activation peak above this counts as a beat (`activation_features`' peaks per beat).
PEAK_THRESHOLD = 0.3


def activation_inputs(envelopes: np.ndarray, level_db: np.ndarray, novelty: np.ndarray) -> np.ndarray:
    """The network's input, `[INPUT_CHANNELS, frames]` float32: each onset envelope (`[4, frames]`) divided by
    its clip mean and log-compressed (`log1p`), the level (`level_db`, dB below the loudest, floor -80) as
    `1 + dB / 80` (0..1), and the harmony novelty (`music.tempo.harmony_novelty`, 0..1). Per-clip scaling:
    envelopes of different clips differ by orders of magnitude."""
    envelopes = np.asarray(envelopes, dtype=np.float64)
    frames = envelopes.shape[1]
    scaled = np.log1p(envelopes / np.maximum(envelopes.mean(axis=1, keepdims=True), 1e-9))
    level = 1.0 + np.asarray(level_db, dtype=np.float64)[:frames] / 80.0
    novelty = np.asarray(novelty, dtype=np.float64)[:frames]
    return np.concatenate([scaled, level[None], novelty[None]]).astype(np.float32)


def clip_inputs(envelopes: tuple[np.ndarray, ...] | np.ndarray, level_db: np.ndarray, chroma: np.ndarray,
                hop_in_s: float) -> np.ndarray:
    """`activation_inputs` from a clip's four `music.tempo.tempo_envelopes`, its `music.tempo.level_frames` and
    its `music.tempo.chroma_frames` (one frame every `hop_in_s` seconds; all cut to the shortest)."""
    frames = min(min(len(envelope) for envelope in envelopes), len(level_db), chroma.shape[1])
    novelty = harmony_novelty(chroma[:, :frames], hop_in_s)
    return activation_inputs(np.array([envelope[:frames] for envelope in envelopes]), level_db[:frames], novelty)


def load_activation_model(path: Path) -> dict[str, np.ndarray]:
    """A learned network's weights (`benchmarks.learn_beat_activation --out`, an npz of float32 arrays)."""
    with np.load(path) as data:
        return {name: data[name].astype(np.float32) for name in data.files}


def _conv(inputs: np.ndarray, weight: np.ndarray, bias: np.ndarray, dilation: int = 1) -> np.ndarray:
    """torch.nn.Conv1d with 'same' zero padding on `[channels, frames]` (weight `[out, in, taps]`)."""
    taps = weight.shape[2]
    pad = dilation * (taps - 1) // 2
    padded = np.pad(inputs, ((0, 0), (pad, pad)))
    frames = inputs.shape[1]
    stacked = np.concatenate([padded[:, tap * dilation:tap * dilation + frames] for tap in range(taps)])
    return weight.transpose(0, 2, 1).reshape(weight.shape[0], -1) @ stacked + bias[:, None]


def _elu(values: np.ndarray) -> np.ndarray:
    return np.where(values > 0, values, np.expm1(np.minimum(values, 0.0)))


def beat_activation(inputs: np.ndarray, model: dict[str, np.ndarray]) -> np.ndarray:
    """Per-frame beat activation (0..1, `[frames]`) of `activation_inputs` by a learned network (`model`, see
    `load_activation_model`; the layer names follow `benchmarks.learn_beat_activation.BeatTCN`'s state dict)."""
    return activations(inputs, model)[0]


def activations(inputs: np.ndarray, model: dict[str, np.ndarray]) -> np.ndarray:
    """Every output of the network per frame (0..1, `[outputs, frames]`): the beat activation, and for a network
    learned with downbeats (`learn_beat_activation --downbeats`) the downbeat activation as a second row."""
    hidden = _elu(_conv(inputs.astype(np.float32), model["input.weight"], model["input.bias"]))
    block = 0
    while f"blocks.{block}.weight" in model:
        dilation = int(2 ** block)
        hidden = hidden + _elu(_conv(hidden, model[f"blocks.{block}.weight"], model[f"blocks.{block}.bias"],
                                     dilation))
        block += 1
    logits = _conv(hidden, model["output.weight"], model["output.bias"])
    return 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))


def _fold_contrast(activation: np.ndarray, period_in_frames: float) -> tuple[float, float]:
    """Fold `activation` at `period_in_frames` (one-frame bins, mean per bin, lightly smoothed) and return
    (strongest bin / mean bin, the bin half a period after the strongest / the strongest)."""
    bins = max(4, 2 * round(period_in_frames / 2))
    folded = smoothed_fold(activation, period_in_frames, bins)
    best = int(np.argmax(folded))
    peak = max(float(folded[best]), 1e-9)
    return peak / max(float(folded.mean()), 1e-9), float(folded[(best + bins // 2) % bins]) / peak


def _autocorrelation(activation: np.ndarray, lag_in_frames: float) -> float:
    """Normalised autocorrelation of the mean-removed `activation` at a fractional lag (linear interpolation
    between the neighbouring whole lags; 0 beyond the clip)."""
    centred = activation - activation.mean()
    energy = float(np.dot(centred, centred)) + 1e-12
    values = []
    for lag in (math.floor(lag_in_frames), math.floor(lag_in_frames) + 1):
        values.append(float(np.dot(centred[:-lag], centred[lag:])) / energy if 0 < lag < len(centred) else 0.0)
    weight = lag_in_frames - math.floor(lag_in_frames)
    return (1 - weight) * values[0] + weight * values[1]


def activation_features(activation: np.ndarray | None, bpm: float, hop_in_s: float) -> np.ndarray:
    """A candidate tempo's (BPM) fit to the beat activation (`[frames]`, one frame every `hop_in_s` seconds):
    log fold contrast at the tempo and each of `ACTIVATION_RATIOS`, the half-beat ratio at the tempo and at its
    half, the autocorrelation at the beat lag, half and double lag (and the lag's minus the half and double's
    best), and log2 activation peaks per candidate beat. Zeros when `activation` is None (no model shipped)."""
    size = 2 * len(ACTIVATION_RATIOS) + 1 + 4 + 1
    if activation is None or len(activation) < 8:
        return np.zeros(size)
    period = 60.0 / bpm / hop_in_s
    contrast, half_beat = [], []
    for ratio in ACTIVATION_RATIOS:
        sharpness, offbeat = _fold_contrast(activation, period / ratio)
        contrast.append(math.log(sharpness))
        half_beat.append(offbeat)
    correlation = [_autocorrelation(activation, period * lag) for lag in (1.0, 0.5, 2.0)]
    peaks = np.flatnonzero((activation[1:-1] >= PEAK_THRESHOLD) & (activation[1:-1] >= activation[:-2])
                           & (activation[1:-1] > activation[2:]))
    beats = len(activation) * hop_in_s * bpm / 60.0
    return np.array([*contrast, *half_beat, _fold_contrast(activation, 2 * period)[1], *correlation,
                     correlation[0] - max(correlation[1], correlation[2]), math.log2((len(peaks) + 0.5) / beats)])


def downbeat_features(downbeat: np.ndarray | None, bpm: float, hop_in_s: float) -> np.ndarray:
    """A candidate tempo's (BPM) fit to the downbeat activation (`[frames]`, one frame every `hop_in_s` seconds):
    for a bar of each of `BAR_BEATS` candidate beats, the log fold contrast and the bin half a bar after the
    strongest over the strongest. At the right tempo a 4/4 clip's downbeats fold sharply on 4 beats and leave the
    half bar empty; at its double they fold on 4 beats only half as sharply (half the folds hold a downbeat), at
    its half the 4-beat fold holds two bars (two peaks, half-bar ratio near 1). Zeros when `downbeat` is None."""
    if downbeat is None or len(downbeat) < 8:
        return np.zeros(2 * len(BAR_BEATS))
    period = 60.0 / bpm / hop_in_s
    values = [_fold_contrast(downbeat, beats * period) for beats in BAR_BEATS]
    return np.array([math.log(sharpness) for sharpness, _ in values] + [half_bar for _, half_bar in values])
