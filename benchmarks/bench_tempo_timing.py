"""What the learned beat activation would add to the tempo estimator's time per clip, measured against the estimator
in one process (a loaded machine's speed drifts; the median ratio over clips is what to read).

    OMP_NUM_THREADS=1 python -m benchmarks.bench_tempo_timing --activation runs/beat_activation.npz

Per clip, alternated in order: `music.tempo.estimate_tempo` as shipped, and the work the activation adds when the
estimator reads it (`music.tempo.tempo_analysis` already computes the envelopes, level and chroma, so only this is
new): `music.beat_activation.clip_inputs` (the harmony novelty), the network (`beat_activation`) and
`activation_features` at each of the clip's candidate tempi. Prints the median of (estimator + added) / estimator.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from music import beat_activation, tempo


def added_work(arrays: tuple, candidates: list[float], hop_in_s: float, model: dict[str, np.ndarray]) -> np.ndarray:
    """The activation's inputs, the network and its features at every candidate (BPM)."""
    activation = beat_activation.beat_activation(beat_activation.clip_inputs(*arrays, hop_in_s), model)
    return np.array([beat_activation.activation_features(activation, bpm, hop_in_s) for bpm in candidates])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus/valid"),
                        help="split folder with metadata.jsonl (default data/corpus/valid)")
    parser.add_argument("--clips", type=int, default=30, help="labelled clips timed, from the first (default 30)")
    parser.add_argument("--activation", type=Path, required=True,
                        help="beat activation network (benchmarks.learn_beat_activation --out)")
    args = parser.parse_args(argv)
    if args.clips < 1:
        parser.error(f"--clips must be at least 1, got {args.clips}")
    if not args.activation.is_file():
        parser.error(f"--activation: no file {args.activation}")
    model = beat_activation.load_activation_model(args.activation)
    rows = [json.loads(line) for line in (args.corpus / "metadata.jsonl").read_text().splitlines() if line.strip()]
    rows = [row for row in rows if row.get("bpm")][:args.clips]
    ratios, estimator_times, added_times = [], [], []
    for number, row in enumerate(tqdm(rows, desc="clips")):
        audio, rate = sf.read(args.corpus / row["file_name"], dtype="float32", always_2d=True)
        audio, rate = tempo.check_audio(audio.mean(axis=1)), int(rate)
        hop_in_s = tempo.onset_hop_samples(rate) / rate
        arrays = (tempo.tempo_envelopes(audio, rate), tempo.level_frames(audio, rate), tempo.chroma_frames(audio, rate))
        candidates = tempo.candidate_tempi(tempo.tempo_analysis(audio, rate, tempo.estimate_tempo(audio, rate).bpm))
        if number == 0:
            added_work(arrays, candidates, hop_in_s, model)
        seconds = {}
        for name in (("estimator", "added") if number % 2 == 0 else ("added", "estimator")):
            started = time.perf_counter()
            if name == "estimator":
                tempo.estimate_tempo(audio, rate)
            else:
                added_work(arrays, candidates, hop_in_s, model)
            seconds[name] = time.perf_counter() - started
        estimator_times.append(seconds["estimator"])
        added_times.append(seconds["added"])
        ratios.append((seconds["estimator"] + seconds["added"]) / seconds["estimator"])
    print(f"median per clip: estimator {statistics.median(estimator_times):.3f} s, added by the beat activation "
          f"{statistics.median(added_times):.4f} s; median ratio (estimator + added) / estimator "
          f"{statistics.median(ratios):.3f} over {len(ratios)} clips")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
