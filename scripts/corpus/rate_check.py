"""Measurement behind the default sample rate: renders a sample of planned clips at 44.1 kHz
and reports, per clip kind, the share of spectral energy above 8 kHz (lost at 16 kHz) and
above 11.025 kHz (lost at 22.05 kHz), plus render time (s) and FLAC bytes per clip at 16 and
22.05 kHz.

    python -m scripts.corpus.rate_check --clips-per-kind 12
"""
from __future__ import annotations

import argparse
import io
import sys
import time
from collections import defaultdict

import numpy as np
import soundfile as sf

from scripts.corpus.audio import normalise_loudness
from scripts.corpus.plan import DurationPolicy, discover_sources, plan_corpus
from scripts.corpus.render import RENDERERS, RenderConfig, RenderContext

REFERENCE_RATE = 44100
CANDIDATE_RATES = (16000, 22050)


def energy_share_above(audio: np.ndarray, sample_rate: int, cutoff_hz: float) -> float:
    """Share (0..1) of the signal's spectral energy above `cutoff_hz`."""
    spectrum = np.abs(np.fft.rfft(audio.astype(np.float64))) ** 2
    frequencies = np.fft.rfftfreq(len(audio), 1.0 / sample_rate)
    total = spectrum.sum()
    return float(spectrum[frequencies > cutoff_hz].sum() / total) if total > 0 else 0.0


def flac_bytes(audio: np.ndarray, sample_rate: int) -> int:
    """Size in bytes of `audio` as 16-bit FLAC."""
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(audio, -1, 1), sample_rate, format="FLAC", subtype="PCM_16")
    return buffer.getbuffer().nbytes


def measure(clips_per_kind: int, seed: int) -> dict[str, dict[str, float]]:
    """Per kind: mean energy share above 8 and 11.025 kHz, render seconds, FLAC bytes."""
    results: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    catalog = discover_sources(include_share_alike=False)
    specs = plan_corpus(catalog, 2000, seed, ("drums", "melodic", "band", "classical"),
                        DurationPolicy(variable_share=0.0))
    by_kind: dict[str, list] = defaultdict(list)
    for spec in specs:
        if len(by_kind[spec.kind]) < clips_per_kind:
            by_kind[spec.kind].append(spec)
    contexts = {rate: RenderContext(RenderConfig("/tmp", rate, False), catalog)
                for rate in (REFERENCE_RATE, *CANDIDATE_RATES)}
    for kind, kind_specs in by_kind.items():
        for spec in kind_specs:
            reference = RENDERERS[kind](spec, contexts[REFERENCE_RATE],
                                        np.random.default_rng(spec.seed)).audio
            results[kind]["above_8k"].append(energy_share_above(reference, REFERENCE_RATE, 8000))
            results[kind]["above_11k"].append(
                energy_share_above(reference, REFERENCE_RATE, 11025))
            for rate in CANDIDATE_RATES:
                started = time.perf_counter()
                audio = RENDERERS[kind](spec, contexts[rate], np.random.default_rng(spec.seed))
                results[kind][f"render_s_{rate}"].append(time.perf_counter() - started)
                results[kind][f"flac_kb_{rate}"].append(
                    flac_bytes(normalise_loudness(audio.audio), rate) / 1024)
    return {kind: {name: float(np.mean(values)) for name, values in stats.items()}
            for kind, stats in results.items()}


def main(argv: list[str] | None = None) -> int:
    """Print the measurement table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips-per-kind", type=int, default=12,
                        help="clips rendered per clip kind")
    parser.add_argument("--seed", type=int, default=0, help="planning seed")
    args = parser.parse_args(argv)
    table = measure(args.clips_per_kind, args.seed)
    print(f"{'kind':<14} {'>8kHz':>7} {'>11kHz':>7} {'t16k s':>7} {'t22k s':>7} "
          f"{'kB16k':>7} {'kB22k':>7}")
    for kind, stats in sorted(table.items()):
        print(f"{kind:<14} {100 * stats['above_8k']:6.2f}% {100 * stats['above_11k']:6.2f}% "
              f"{stats['render_s_16000']:7.3f} {stats['render_s_22050']:7.3f} "
              f"{stats['flac_kb_16000']:7.1f} {stats['flac_kb_22050']:7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
