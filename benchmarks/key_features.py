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

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from benchmarks.estimator_features import split_parser, split_rows
from music import key as key_module


def main(argv: list[str] | None = None) -> int:
    parser = split_parser(__doc__.split("\n\n")[0],
                          "npz file to write (default runs/estimators/key-SPLIT[-i-of-n].npz)")
    args = parser.parse_args(argv)
    folder, rows, out = split_rows(parser, args, ("key",), prefix="key-")
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
