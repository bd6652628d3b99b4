"""Paired development check of the verification's recut (`CopyDetector(recut_shift=True)`) on a stored
memorization benchmark run: the same planted pitch copies and the same held-out windows, re-planted
with the run's seed (the same random stream as `bench_memorization.plant_and_match`, so every clip
is the stored run's own: the search reproduces its stored copy scores, checked per clip), matched
and verified with the recut; each clip's residual SNR is compared with its stored copy-6 value.

    OMP_NUM_THREADS=1 python -m benchmarks.check_recut_shift --name drums --windows 30

Writes benchmarks/results/memorization-recut-NAME.json: per clip, the stored and the recut residual
(dB), the verified training clip and semitones; seconds per clip. A development check, not the
benchmark: only the pitch family and the first `--windows` calibration and held-out windows.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_memorization import FAMILIES, SAMPLE_RATE, audio_files, plant, window
from evaluation.audio_io import load_clips
from evaluation.cache import EmbeddingCache
from evaluation.copy_detection import CopyDetector
from evaluation.memorization import TrainingAudio


def replant(stored: dict) -> tuple[list[np.ndarray], list[dict], dict[str, list[np.ndarray]]]:
    """The stored run's planted copies, their truths, and its calibration and held-out windows."""
    rng = np.random.default_rng(stored["seed"])
    train_paths = audio_files(stored["train"])
    others, _ = load_clips(audio_files(stored["other"]), SAMPLE_RATE)
    sources = len(stored["per_clip"]["copies"]) // len(FAMILIES)
    queries, truths = [], []
    for family in FAMILIES:
        for source_index in rng.choice(len(train_paths), size=sources, replace=False):
            other = others[int(rng.integers(len(others)))]
            source, _ = load_clips([train_paths[source_index]], SAMPLE_RATE)
            clip, truth = plant(family, source[0], other, stored["seconds"], rng)
            queries.append(clip)
            truths.append({**truth, "source": int(source_index)})
    negatives = {}
    for name in ("calibration", "held_out"):
        waves, _ = load_clips(audio_files(stored[name]), SAMPLE_RATE)
        negatives[name] = [window(w, stored["seconds"], rng)[0] for w in waves]
    return queries, truths, negatives


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True, help="the stored run: benchmarks/results/memorization-NAME.json")
    parser.add_argument("--windows", type=int, default=30,
                        help="first calibration and held-out windows checked, each (default %(default)s)")
    args = parser.parse_args()
    path = Path(f"benchmarks/results/memorization-{args.name}.json")
    if not path.is_file():
        parser.exit(2, f"error: no stored run at {path}\n")
    if args.windows < 0:
        parser.exit(2, f"error: --windows must be 0 or more, got {args.windows}\n")
    stored = json.loads(path.read_text())
    queries, truths, negatives = replant(stored)
    rows = stored["per_clip"]
    if [row["source"] for row in rows["copies"]] != [t["source"] for t in truths]:
        parser.exit(2, "error: the re-planted copies are not the stored run's (another seed or folder?)\n")
    detector = CopyDetector(verify_candidates=stored["detector"]["verify_candidates"], recut_shift=True)
    train_paths = audio_files(stored["train"])
    features = detector.features_for_files(train_paths, EmbeddingCache(), progress=False)
    key_audio = TrainingAudio(train_paths, SAMPLE_RATE)
    pitch = [i for i, t in enumerate(truths) if t["family"] == "pitch"]
    selections = {"pitch": (pitch, queries, rows["copies"]),
                  **{name: (list(range(min(args.windows, len(negatives[name])))), negatives[name], rows[name])
                     for name in ("calibration", "held_out")}}
    out = {"name": args.name, "detector": detector.describe()}
    for what, (indices, clips, stored_rows) in selections.items():
        chosen = [clips[i] for i in indices]
        started = time.perf_counter()
        match = detector.match([detector.features(c) for c in chosen], features, progress=False)
        match = detector.verify(chosen, match, key_audio)
        seconds = time.perf_counter() - started
        pairs = []
        for j, i in enumerate(indices):
            old = stored_rows[i]
            if abs(float(match.score[j]) - old["copy_score"]) > 1e-5:
                parser.exit(2, f"error: {what} clip {i}: copy score {match.score[j]:.5f} is not the stored "
                               f"{old['copy_score']:.5f}: not the stored run's clip\n")
            pairs.append({"clip": i, "source": old.get("source"), "residual_stored_db": old["residual_snr_db"]["33"],
                          "residual_recut_db": float(match.residual_snr_db[j]),
                          "verified_index": int(match.verified_index[j]),
                          "verified_semitones": float(match.verified_semitones[j])})
        rose = [p for p in pairs if p["residual_recut_db"] > p["residual_stored_db"] + 0.01]
        out[what] = {"clips": len(pairs), "rose": len(rose), "seconds_per_clip": seconds / max(len(pairs), 1),
                     "rows": pairs}
        print(what, f"{len(rose)} of {len(pairs)} residuals rose", flush=True)
    target = Path(f"benchmarks/results/memorization-recut-{args.name}.json")
    target.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
