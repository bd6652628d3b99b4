"""A known-quality ladder: real clips degraded in steps whose order is known, so a metric can be
checked before a report is allowed to rank checkpoints by it.

Rungs (all on the same held-out real clips): the clips themselves; white noise at 30/20/10 dB
SNR; low-passed at 4/2/1 kHz; sent through the bundled mel representation (`models.mel.Mel`
image and back with Griffin-Lim); 100 ms frames shuffled in time. Only the order inside each
chain is known (noise 30 dB beats 10 dB; nobody can say whether 20 dB noise beats a 2 kHz
low-pass), so a metric orders the ladder when every chain is strictly monotone from the real
clips down. The memorization share has its own chain: the same held-out clips with 0, 25, 50 and
100% of them replaced by training clips as they are (verbatim copies; the benchmark also reports
how many disguised copies, `synthetic.planted_copy`, the detector flags, which is not part of
the chain). Each seed draws N clips once and every rung holds those same clips degraded.

`benchmarks/bench_ladder.py` measures, per embedder, metric and N, the share of seeded draws in
which the ladder comes out in order, and writes the smallest N at which each metric passes
(>= 95% of seeds) to `ladder_min_n.json` next to this file; `metric_shown` reads it, and the
compare report withholds a metric at an N where it failed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np

from evaluation.synthetic import add_noise, low_pass

MIN_N_FILE = Path(__file__).with_name("ladder_min_n.json")
PASS_SHARE = 0.95
SHUFFLE_FRAME_S = 0.1

REAL = "real"
QUALITY_CHAINS: list[list[str]] = [
    [REAL, "noise 30 dB", "noise 20 dB", "noise 10 dB"],
    [REAL, "low-pass 4 kHz", "low-pass 2 kHz", "low-pass 1 kHz"],
    [REAL, "mel round trip"],
    [REAL, "frames shuffled"],
]
COPY_SHARES = (0.0, 0.25, 0.5, 1.0)
COPY_CHAIN: list[str] = [f"{share:.0%} copies" for share in COPY_SHARES]

# metric name -> does a larger value mean a better (closer to real) set?
HIGHER_IS_BETTER = {"fad": False, "fad_inf": False, "kad": False, "mad": False, "clap_score": True}
# the memorization share grows with the copies planted: it is checked on COPY_CHAIN, increasing
MEMORIZATION = "memorization"


def shuffle_frames(waveform: np.ndarray, sample_rate: int, seed: int, frame_s: float = SHUFFLE_FRAME_S) -> np.ndarray:
    """`waveform` cut into `frame_s`-second frames put back in a seeded random order (tail kept last)."""
    size = max(1, int(frame_s * sample_rate))
    count = len(waveform) // size
    frames = waveform[: count * size].reshape(count, size)
    order = np.random.default_rng(seed).permutation(count)
    return np.concatenate([frames[order].reshape(-1), waveform[count * size :]]).astype(np.float32)


def mel_round_trip(waveform: np.ndarray, sample_rate: int, seed: int, mel_config: str | Path) -> np.ndarray:
    """`waveform` through the checkpoint's `Mel` (image in [-1, 1], then Griffin-Lim), at its input RMS."""
    import torch

    mel = _load_mel(str(mel_config))
    if mel.sample_rate != sample_rate:
        raise ValueError(f"the mel config works at {mel.sample_rate} Hz, the clip is at {sample_rate} Hz")
    audio = torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32))
    image = mel.audio_to_image(audio, x_res=mel.frames_for_samples(len(waveform)))
    generator = torch.Generator().manual_seed(seed)
    out = mel.image_to_audio(image, generator=generator)[0, : len(waveform)].numpy()
    if len(out) < len(waveform):
        out = np.pad(out, (0, len(waveform) - len(out)))
    rms_in, rms_out = float(np.sqrt(np.mean(waveform**2))), float(np.sqrt(np.mean(out**2)))
    return (out * (rms_in / rms_out if rms_out > 0 else 0.0)).astype(np.float32)


@cache
def _load_mel(mel_config: str):
    from models.mel import Mel

    path = Path(mel_config)
    return Mel.from_pretrained(str(path.parent if path.is_file() else path))


def quality_rungs(mel_config: str | Path | None = None) -> dict[str, Callable[[np.ndarray, int, int], np.ndarray]]:
    """Rung name -> transform(waveform, sample_rate in Hz, seed); the mel rung needs `mel_config`
    (a `mel_config.json` or the folder holding it, e.g. `checkpoints/loops/mel`)."""
    rungs: dict[str, Callable[[np.ndarray, int, int], np.ndarray]] = {REAL: lambda x, sr, seed: x}
    for snr in (30, 20, 10):
        rungs[f"noise {snr} dB"] = lambda x, sr, seed, snr=snr: add_noise(x, snr, seed)
    for khz in (4, 2, 1):
        rungs[f"low-pass {khz} kHz"] = lambda x, sr, seed, khz=khz: low_pass(x, khz * 1000, sr)
    if mel_config is not None:
        rungs["mel round trip"] = lambda x, sr, seed: mel_round_trip(x, sr, seed, mel_config)
    rungs["frames shuffled"] = shuffle_frames
    return rungs


def chain_ordered(values: dict[str, float], chain: list[str], higher_is_better: bool) -> bool:
    """True when `values` along `chain` (best rung first) get strictly worse at every step.
    Rungs missing from `values` (e.g. no mel config) are skipped."""
    present = [values[name] for name in chain if name in values and values[name] is not None]
    steps = np.diff(np.asarray(present, dtype=np.float64))
    if np.any(~np.isfinite(present)):
        return False
    return bool(np.all(steps < 0) if higher_is_better else np.all(steps > 0))


def ladder_ordered(values: dict[str, float], metric: str) -> bool:
    """Does `metric` (a key of HIGHER_IS_BETTER, or MEMORIZATION) order its ladder? `values` maps
    rung names to the metric's value on one draw of N clips per rung."""
    if metric == MEMORIZATION:
        return chain_ordered(values, COPY_CHAIN, higher_is_better=False)  # more copies, larger share
    higher = HIGHER_IS_BETTER[metric]
    return all(chain_ordered(values, chain, higher) for chain in QUALITY_CHAINS)


def min_n_from_shares(shares: dict[int, float], pass_share: float = PASS_SHARE) -> int | None:
    """Smallest measured N from which `metric` passes at every larger measured N (None: passes at no N,
    or fails at the largest)."""
    best = None
    for n in sorted(shares, reverse=True):
        if shares[n] < pass_share:
            break
        best = n
    return best


@cache
def _min_n_table(path: str) -> dict:
    file = Path(path)
    return json.loads(file.read_text()) if file.is_file() else {}


def metric_shown(embedder: str, metric: str, n: int, table_path: str | Path | None = None) -> tuple[bool, str | None]:
    """May a report show `metric` for sets of `n` clips embedded with `embedder`?

    Returns (shown, note). Not shown when the ladder benchmark found the metric out of order at
    this N; shown with a note when the embedder or metric was never measured on the ladder.
    `table_path` defaults to `MIN_N_FILE` (read at call time, so tests can point it elsewhere)."""
    table = _min_n_table(str(table_path or MIN_N_FILE)).get("embedders", {}).get(embedder, {})
    if metric not in table:
        return True, f"{metric} not checked on the quality ladder for embedder {embedder!r}"
    entry = table[metric]
    min_n = entry.get("min_n")
    measured = ", ".join(f"N={k}: {v:.0%}" for k, v in entry.get("share_ordered", {}).items())
    if min_n is None:
        return False, (
            f"withheld: {metric} did not order the quality ladder in {PASS_SHARE:.0%} of seeds at any "
            f"measured N with {embedder} ({measured}; benchmarks/bench_ladder.py)"
        )
    if n < min_n:
        return False, (
            f"withheld at N={n}: {metric} orders the quality ladder only from N={min_n} with {embedder} "
            f"({measured}; benchmarks/bench_ladder.py)"
        )
    return True, None
