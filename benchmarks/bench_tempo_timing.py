"""Time per clip of the tempo estimator with the learned beat activation against the estimator before it, alternated
in one process (a loaded machine's speed drifts; the median ratio over clips is what to read).

    git show HEAD~1:music/tempo_model.json > runs/tempo_model_before.json   # the candidate network before
    OMP_NUM_THREADS=1 python -m benchmarks.bench_tempo_timing --before-model runs/tempo_model_before.json

"Before" runs `music.tempo.estimate_tempo` with no beat activation (`clip_beat_activation` returns None, so the
activation features are 0) and the earlier candidate network (`--before-model`, its input layer padded with zero
weights for those features: the earlier estimator exactly); "after" runs the shipped estimator. Both are run on
every clip (order alternated), after one warm-up call each; the tempo each reads is printed too.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from unittest import mock

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from music import tempo


def padded_model(path: Path, features: int) -> dict[str, np.ndarray]:
    """The candidate network of `path` (a `tempo_model.json`) with its input padded to `features` columns: the
    new columns centred at 0, scale 1, zero weights."""
    data = json.loads(path.read_text())
    model = {name: np.array(value, dtype=np.float64) for name, value in data.items() if name != "learned_on"}
    extra = features - len(model["mean"])
    if extra < 0:
        raise ValueError(f"{path} has {len(model['mean'])} features, more than the estimator's {features}")
    model["mean"] = np.concatenate([model["mean"], np.zeros(extra)])
    model["scale"] = np.concatenate([model["scale"], np.ones(extra)])
    model["weights0"] = np.concatenate([model["weights0"], np.zeros((extra, model["weights0"].shape[1]))])
    return model


def timed(function, *args) -> tuple[float, float]:
    """(seconds, result) of one call."""
    started = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - started, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus/valid"),
                        help="split folder with metadata.jsonl (default data/corpus/valid)")
    parser.add_argument("--clips", type=int, default=30, help="labelled clips timed, from the first (default 30)")
    parser.add_argument("--before-model", type=Path, required=True,
                        help="the candidate network before the beat activation (a tempo_model.json)")
    args = parser.parse_args(argv)
    if args.clips < 1:
        parser.error(f"--clips must be at least 1, got {args.clips}")
    if not args.before_model.is_file():
        parser.error(f"--before-model: no file {args.before_model}")
    rows = [json.loads(line) for line in (args.corpus / "metadata.jsonl").read_text().splitlines() if line.strip()]
    rows = [row for row in rows if row.get("bpm")][:args.clips]
    probe = tempo.TempoAnalysis(curves=np.ones((4, 288)), folds=np.ones((4, 288)), grid_bpm=100.0, pulse_clarity=2.0,
                                seconds=5.0, onset_rate=2.0, low_band_db=-10.0)
    before_model = padded_model(args.before_model, len(tempo.candidate_features(probe, 100.0)))

    def before(audio: np.ndarray, rate: int) -> float:
        with mock.patch.object(tempo, "clip_beat_activation", lambda *_: None), \
                mock.patch.object(tempo, "tempo_model", lambda: before_model):
            return tempo.estimate_tempo(audio, rate).bpm

    def after(audio: np.ndarray, rate: int) -> float:
        return tempo.estimate_tempo(audio, rate).bpm

    ratios, times = [], {"before": [], "after": []}
    for number, row in enumerate(tqdm(rows, desc="clips")):
        audio, rate = sf.read(args.corpus / row["file_name"], dtype="float32", always_2d=True)
        audio = audio.mean(axis=1)
        if number == 0:
            before(audio, int(rate))
            after(audio, int(rate))
        order = (("before", before), ("after", after)) if number % 2 == 0 else (("after", after), ("before", before))
        seconds, bpms = {}, {}
        for name, function in order:
            seconds[name], bpms[name] = timed(function, audio, int(rate))
            times[name].append(seconds[name])
        ratios.append(seconds["after"] / seconds["before"])
        print(f"{row['file_name']}: label {row['bpm']:g}, before {bpms['before']:.1f} ({seconds['before']:.2f} s), "
              f"after {bpms['after']:.1f} ({seconds['after']:.2f} s)")
    print(f"median time per clip: before {statistics.median(times['before']):.3f} s, after "
          f"{statistics.median(times['after']):.3f} s; median ratio after/before {statistics.median(ratios):.3f} "
          f"over {len(ratios)} clips")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
