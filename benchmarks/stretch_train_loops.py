"""More break-loop material for the tempo models: Rubber Band stretches of the train split's break loops.

    OMP_NUM_THREADS=1 python -m benchmarks.stretch_train_loops --out runs/stretched-loops
    OMP_NUM_THREADS=1 python -m benchmarks.estimator_features train --corpus runs/stretched-loops --no-key \
        --out CACHE/stretch-train.npz     # then --extra-train ... stretch in the learning scripts

Break loops are a fixed set of source files, so the fresh corpus builds (`--seed 1`, `--seed 2`) add none, and the
corpus's valid break loop (a tabla loop at 80-102 BPM) is a kind the train split holds only at 95-180 BPM. This
writes, for each train clip of the chosen kinds, `--copies` copies stretched (pitch kept, `music.stretch.time_stretch`,
Rubber Band's R3 engine) to seeded tempi between `--min-ratio` and `--max-ratio` times its label (within
`music.tempo.BPM_RANGE`, at least `MIN_CHANGE` away from it), cut to the source's length (a slowed copy) or shorter
(a sped-up one). The labels scale exactly: the clip starts on a beat and the stretch is uniform. The output is a
corpus-like folder (`OUT/train/metadata.jsonl`, `OUT/train/drums/*.flac`, 16-bit FLAC at the source's rate) that
`benchmarks.estimator_features` caches like any split. Reads the train split only, never valid or test.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from music.stretch import samples_at_tempo, stretcher_name, time_stretch
from music.tempo import BPM_RANGE

# A copy's tempo differs from its source's by at least this share (else it adds little).
MIN_CHANGE = 0.05


def copy_tempi(bpm: float, copies: int, min_ratio: float, max_ratio: float, rng: np.random.Generator) -> list[float]:
    """`copies` target tempi (BPM) for a clip labelled `bpm`: uniform between `min_ratio` and `max_ratio` times
    `bpm` (clipped to `BPM_RANGE`), redrawn while within `MIN_CHANGE` of `bpm`; rounded to 0.01 BPM."""
    low, high = max(BPM_RANGE[0], bpm * min_ratio), min(BPM_RANGE[1], bpm * max_ratio)
    if high <= low:
        return []
    tempi: list[float] = []
    for _ in range(100 * copies):
        if len(tempi) == copies:
            break
        tempo = round(float(rng.uniform(low, high)), 2)
        if abs(tempo / bpm - 1) >= MIN_CHANGE:
            tempi.append(tempo)
    return tempi


def stretched_copy(audio: np.ndarray, sample_rate: int, bpm: float, tempo: float) -> np.ndarray:
    """Mono `audio` (labelled `bpm`) played at `tempo` BPM, pitch kept; cut to `len(audio)` samples when slower."""
    stretched = time_stretch(audio, sample_rate, samples_at_tempo(len(audio), bpm, tempo))
    return stretched[:len(audio)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus"),
                        help="corpus root whose train split is stretched (default data/corpus)")
    parser.add_argument("--out", type=Path, default=Path("runs/stretched-loops"),
                        help="corpus-like folder to write (OUT/train/...; default runs/stretched-loops)")
    parser.add_argument("--kinds", nargs="+", default=["break"],
                        help="clip kinds to stretch (metadata `kind`; default break)")
    parser.add_argument("--copies", type=int, default=2, help="stretched copies per clip (default 2)")
    parser.add_argument("--min-ratio", type=float, default=0.55,
                        help="slowest copy as a share of the label (default 0.55)")
    parser.add_argument("--max-ratio", type=float, default=1.25,
                        help="fastest copy as a share of the label (default 1.25: a 5 s clip gives 4 s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the target tempi (default 0)")
    args = parser.parse_args(argv)
    if args.copies < 1 or not 0 < args.min_ratio < args.max_ratio:
        parser.error(f"--copies must be at least 1 and 0 < --min-ratio < --max-ratio, got {args.copies}, "
                     f"{args.min_ratio}, {args.max_ratio}")
    listing = args.corpus / "train" / "metadata.jsonl"
    if not listing.is_file():
        parser.error(f"no {listing}: give a corpus root with a train split")
    rows = [json.loads(line) for line in listing.read_text().splitlines() if line.strip()]
    rows = [row for row in rows if row.get("kind") in args.kinds and float(row.get("bpm") or 0) > 0]
    if not rows:
        parser.error(f"no labelled train clips of kinds {args.kinds}")
    rng = np.random.default_rng(args.seed)
    folder = args.out / "train"
    written = []
    for row in tqdm(rows, desc=f"stretching ({stretcher_name()})"):
        audio, sample_rate = sf.read(args.corpus / "train" / row["file_name"], dtype="float32", always_2d=True)
        audio = audio.mean(axis=1)
        for number, tempo in enumerate(copy_tempi(float(row["bpm"]), args.copies, args.min_ratio, args.max_ratio,
                                                  rng)):
            name = f"{Path(row['file_name']).with_suffix('')}-x{number}.flac"
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            sf.write(folder / name, stretched_copy(audio, sample_rate, float(row["bpm"]), tempo), sample_rate,
                     subtype="PCM_16")
            written.append({**row, "file_name": name, "bpm": tempo, "key": "", "source_bpm": row["bpm"],
                            "stretched_from": row["file_name"]})
    (folder / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in written))
    print(f"wrote {len(written)} clips to {folder} ({stretcher_name()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
