"""Cache the tempo and key estimators' per-clip features of one corpus split, so that learning and
comparing the estimators' models (`benchmarks.learn_estimators`) does not re-analyse the audio.

    OMP_NUM_THREADS=1 python -m benchmarks.estimator_features train   # writes runs/estimators/train.npz
    # a second corpus build's fresh clips (extra tempo training rows, `learn_estimators tempo --extra-train seed1`):
    OMP_NUM_THREADS=1 python -m benchmarks.estimator_features train --corpus ../corpus-seed1 --no-key \
        --exclude-groups data/corpus/corpus.jsonl --out runs/estimators/seed1-train.npz
    # a third build (`--extra-train seed1 seed2`): leave out the groups of both earlier builds
    OMP_NUM_THREADS=1 python -m benchmarks.estimator_features train --corpus ../corpus-seed2 --no-key \
        --exclude-groups data/corpus/corpus.jsonl ../corpus-seed1/corpus.jsonl --out runs/estimators/seed2-train.npz

Per clip (read at its own rate, mixed to mono): the shipped grid estimate without the learned
candidate choice (BPM, pulse clarity) and the rest of its `music.tempo.TempoAnalysis` (the four
tempogram and fold curves on `music.tempo.TEMPO_GRID_BPM`, seconds, onsets per second, low-band
level), the per-frame arrays the accent and harmony cues read (`level_db`, `chroma_frames`, zero-padded
to the part's longest clip, `frame_count` frames each) and the four onset envelopes (`envelopes`, for
trying new candidate features without re-analysing the audio), and the steady constant-Q chroma per
octave (`music.key.octave_chroma`) averaged over the clip and over eighths of it. Labels (bpm, key) and
the clip's subset, kind and part come along. About 0.3 s a clip on one thread (1-2 s on the loaded
2-core machine: the train split took about an hour in three processes, 35 min in two, `--part`).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from unittest import mock

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from music import key as key_module
from music import tempo as tempo_module
from scripts.corpus.splits import groups_in


def clip_features(audio: np.ndarray, sample_rate: int, pitched: bool) -> dict[str, np.ndarray]:
    """All cached features of one mono clip (see the module docstring)."""
    with mock.patch.object(tempo_module, "tempo_candidates", lambda *args, **kwargs: []):
        grid = tempo_module.estimate_tempo(audio, sample_rate)
    checked = tempo_module.check_audio(audio)
    analysis = tempo_module.tempo_analysis(checked, sample_rate, grid.bpm, grid.pulse_clarity)
    envelopes = tempo_module.tempo_envelopes(checked, sample_rate)
    frames = min(len(envelope) for envelope in envelopes)
    features = {
        "grid": np.array([analysis.grid_bpm, analysis.pulse_clarity]),
        "envelopes": np.array([envelope[:frames] for envelope in envelopes], dtype=np.float32),
        "chroma_frames": analysis.chroma[:, :frames],
        "level_db": analysis.level_db[:frames],
        "frame_count": np.array(frames),
        "curves": analysis.curves,
        "folds": analysis.folds,
        "clip": np.array([analysis.seconds, analysis.onset_rate, analysis.low_band_db]),
    }
    if pitched:
        features["chroma"] = key_module.octave_chroma(audio, sample_rate)
    else:
        features["chroma"] = np.zeros((1 + key_module.KEY_SEGMENTS, key_module.KEY_OCTAVES, 12))
    return features


def _stacked(values: list[np.ndarray]) -> np.ndarray:
    """`values` stacked along a new first axis; per-frame arrays of clips of different lengths are zero-padded
    at the end to the longest (`frame_counts` keeps each clip's own length)."""
    length = max(np.shape(value)[-1] if np.ndim(value) else 0 for value in values)
    if all(np.shape(value) == np.shape(values[0]) for value in values):
        return np.array(values)
    padded = [np.pad(value, [(0, 0)] * (np.ndim(value) - 1) + [(0, length - np.shape(value)[-1])]) for value in values]
    return np.array(padded)


def split_parser(description: str, out_help: str) -> argparse.ArgumentParser:
    """The command line shared by the feature caches: a corpus split, `--corpus`, `--part i/n`, `--out`."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("split", help="corpus split folder name (train, valid or test)")
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus"), help="corpus root (default data/corpus)")
    parser.add_argument("--part", type=str, default="0/1",
                        help="i/n: only every n-th clip from the i-th (to run n processes; default 0/1, all)")
    parser.add_argument("--out", type=Path, default=None, help=out_help)
    parser.add_argument("--exclude-groups", type=Path, nargs="+", default=[], metavar="CORPUS_JSONL",
                        help="leave out every clip whose `group` occurs in any of these corpus.jsonl files (e.g. "
                             "data/corpus/corpus.jsonl, to keep only a second build's fresh material: its pattern "
                             "seeds and pieces, not the fixed sources both builds share; a third build names both "
                             "earlier builds' files); default keeps all")
    parser.add_argument("--subsets", nargs="+", default=None,
                        help="only clips of these subsets (drums, band, melodic, classical); default all")
    return parser


def split_rows(parser: argparse.ArgumentParser, args: argparse.Namespace, labels: tuple[str, ...],
               prefix: str = "") -> tuple[Path, list[dict], Path]:
    """The split folder, its rows with any of `labels` (this `--part` only) and the npz file to write.

    A bad `--part` or a folder without `metadata.jsonl` ends the command through `parser.error` (exit 2).
    """
    try:
        index, count = (int(value) for value in args.part.split("/"))
    except ValueError:
        parser.error(f"--part must be i/n with 0 <= i < n, got {args.part!r}")
    if not 0 <= index < count:
        parser.error(f"--part must be i/n with 0 <= i < n, got {args.part!r}")
    folder = args.corpus / args.split
    if not (folder / "metadata.jsonl").is_file():
        parser.error(f"no {folder / 'metadata.jsonl'}: give a split folder of --corpus (train, valid or test)")
    rows = [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines() if line.strip()]
    rows = [row for row in rows if any(row.get(label) for label in labels)]
    if args.exclude_groups:
        for corpus_jsonl in args.exclude_groups:
            if not corpus_jsonl.is_file():
                parser.error(f"--exclude-groups: no file {corpus_jsonl}")
        shared = groups_in(*args.exclude_groups)
        rows = [row for row in rows if str(row.get("group", "")) not in shared]
    if args.subsets:
        rows = [row for row in rows if row.get("subset") in args.subsets]
    rows = rows[index::count]
    out = args.out or Path("runs/estimators") / (prefix + args.split + (f"-{index}-of-{count}" if count > 1 else "")
                                                 + ".npz")
    return folder, rows, out


def main(argv: list[str] | None = None) -> int:
    parser = split_parser(__doc__.split("\n\n")[0], "npz file to write (default runs/estimators/SPLIT[-i-of-n].npz)")
    parser.add_argument("--no-key", action="store_true",
                        help="skip the key's constant-Q chroma (cached as zeros) for a tempo-only cache")
    args = parser.parse_args(argv)
    folder, rows, out = split_rows(parser, args, ("bpm", "key"))
    columns: dict[str, list] = {}
    for row in tqdm(rows, desc=f"features ({args.split} {args.part})"):
        audio, sample_rate = sf.read(folder / row["file_name"], dtype="float32", always_2d=True)
        for name, value in clip_features(audio.mean(axis=1), int(sample_rate),
                                                  bool(row.get("key")) and not args.no_key).items():
            columns.setdefault(name, []).append(value)
    labels = {"file_name": [row["file_name"] for row in rows], "bpm": [float(row.get("bpm") or 0) for row in rows],
              "key": [row.get("key") or "" for row in rows], "subset": [row.get("subset", "") for row in rows],
              "kind": [row.get("kind", "") for row in rows], "part": [row.get("part", "") for row in rows]}
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **{name: _stacked(values) for name, values in columns.items()},
                        **{name: np.array(values) for name, values in labels.items()})
    print(f"wrote {out} ({len(rows)} clips)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
