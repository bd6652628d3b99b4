"""Cache the key estimator's frame-level chroma of one corpus split's labelled pitched clips, so that learning
the key model (`python -m benchmarks.learn_estimators key`) does not re-analyse the audio.

    OMP_NUM_THREADS=1 python -m benchmarks.key_features train --part 0/2   # runs/estimators/key-train-0-of-2.npz

Per clip with a labelled key (read at its own rate, mixed to mono): `music.key.steady_chroma` (the steady
part of a tuning-corrected constant-Q transform, log-compressed, per octave and pitch class, one frame per
`music.key.CHROMA_HOP_IN_S`), stored as float16 `[7 * 12, frames]` semitone rows C1 ... B7, all clips'
frames concatenated with their offsets; the key label and the clip's kind and part come along.
About 0.2 s a clip on one thread on a quiet machine.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from music import key as key_module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("split", help="corpus split folder name (train, valid or test)")
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus"), help="corpus root (default data/corpus)")
    parser.add_argument("--part", type=str, default="0/1",
                        help="i/n: only every n-th clip from the i-th (to run n processes; default 0/1, all)")
    parser.add_argument("--out", type=Path, default=None,
                        help="npz file to write (default runs/estimators/key-SPLIT[-i-of-n].npz)")
    args = parser.parse_args(argv)
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
    rows = [row for row in rows if row.get("key")][index::count]
    out = args.out or Path("runs/estimators") / ("key-" + args.split + (f"-{index}-of-{count}" if count > 1 else "")
                                                 + ".npz")
    frames, offsets = [], [0]
    for row in tqdm(rows, desc=f"key features ({args.split} {args.part})"):
        audio, sample_rate = sf.read(folder / row["file_name"], dtype="float32", always_2d=True)
        steady = key_module.steady_chroma(audio.mean(axis=1), int(sample_rate))
        frames.append(steady.reshape(-1, steady.shape[-1]).astype(np.float16))
        offsets.append(offsets[-1] + steady.shape[-1])
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, frames=np.concatenate(frames, axis=1), offsets=np.array(offsets),
                        file_name=np.array([row["file_name"] for row in rows]),
                        key=np.array([row["key"] for row in rows]),
                        kind=np.array([row.get("kind", "") for row in rows]),
                        part=np.array([row.get("part", "") for row in rows]),
                        piece=np.array([str(row.get("piece", "")) for row in rows]))
    print(f"wrote {out} ({len(rows)} clips)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
