"""Does the floor between hits come from the sampler's last steps? The floor of generated windows, on the mel,
for sampler settings against the checkpoint's own, each against the same real clips (issue 20, item 3):

    python -m benchmarks.bench_floor_sampler checkpoints/loops --steps 10 \\
        --setting final_sigmas_type=sigma_min --setting euler_at_final=true

Each setting overrides entries of the scheduler's config (values read as JSON; several in one setting joined
by commas). Measured as `training.floor_stage` calibrates: windows generated with the same seeds, heard at the
tempi of real valid clips and decoded by the pipeline, floor between hits (`floor_between_hits`, median over
clips, dB below the loud level) minus the real clips' own; the floor stage is off.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from benchmarks.bench_quality import parse_option
from models.loading import load_pipeline
from music.audiofolder import METADATA_JSONL, read_rows
from training.floor_stage import at_tempi, decode, generated_mels, median_floor, real_mels
from training.quality_gate import real_clips


def parse_setting(text: str) -> dict:
    """`KEY=VALUE[,KEY=VALUE...]` -> {key: value} (values read as JSON)."""
    return dict(parse_option(part) for part in text.split(","))


def split_floors(checkpoint: Path, corpus: Path | None, count: int = 200, seconds: float = 4.0) -> dict:
    """Median `floor_between_hits` of the first `seconds` of up to `count` real clips (evenly spaced) of the
    checkpoint's kinds in each split of its corpus (train, valid, test), at their own tempo: how far the splits
    themselves differ, against which a generated floor is judged."""
    import soundfile as sf

    from music.take_quality import floor_between_hits
    from training.quality_gate import corpus_of

    checkpoint_folder = Path(checkpoint)
    subsets = {Path(line).parts[1] for line in (checkpoint_folder / "train_files.txt").read_text().split()
               if len(Path(line).parts) >= 3}
    folder = corpus_of(checkpoint_folder, corpus)
    out = {}
    for split in ("train", "valid", "test"):
        rows = [row for row in read_rows(folder / split / METADATA_JSONL) if Path(row["file_name"]).parts[0] in subsets]
        picked = [rows[index] for index in np.linspace(0, len(rows) - 1, min(count, len(rows))).round().astype(int)]
        floors = []
        for row in picked:
            audio, rate = sf.read(str(folder / split / row["file_name"]), dtype="float32")
            if audio.ndim == 1 and len(audio) >= round(seconds * rate):
                floors.append(floor_between_hits(audio[: round(seconds * rate)], rate))
        out[split] = {"clips": len(floors), "median_floor_db": float(np.nanmedian(floors)),
                      "quartiles_db": [float(value) for value in np.nanpercentile(floors, [25, 75])]}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="an unconditional mel checkpoint folder")
    parser.add_argument("--corpus", type=Path, default=None, help="corpus folder (default: the checkpoint's)")
    parser.add_argument("--steps", type=int, default=10, help="denoising steps (the Loops tab's default: 10)")
    parser.add_argument("--num", type=int, default=32, help="generated windows per setting")
    parser.add_argument("--num-real", type=int, default=128, help="real valid clips (evenly spaced)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first window")
    parser.add_argument("--setting", type=parse_setting, action="append", default=[],
                        help="scheduler config overrides KEY=VALUE[,KEY=VALUE] (repeatable; the checkpoint's own "
                             "scheduler is always measured first)")
    parser.add_argument("--splits-only", action="store_true",
                        help="only measure the real clips' floor in each split (train, valid, test) and stop")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.splits_only:
        splits = split_floors(args.checkpoint, args.corpus)
        print(json.dumps(splits, indent=1))
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps({"checkpoint": str(args.checkpoint), "real_splits": splits}, indent=1))
        return 0
    pipeline = load_pipeline(args.checkpoint, device="cpu", floor_stage=False)
    clips = real_clips(args.checkpoint, args.corpus)["valid"]
    step = max(1, len(clips) // args.num_real)
    real, tempi, real_audio = real_mels(pipeline, clips[::step][: args.num_real], 4.0, progress=False)
    real_floor = median_floor(real_audio, pipeline.sample_rate)
    reference = pipeline.reference_bpm
    factors = [reference / tempi[i % len(tempi)] if reference and tempi[i % len(tempi)] else 1.0
               for i in range(args.num)]
    own = dict(pipeline.scheduler.config)
    results = {"checkpoint": str(args.checkpoint), "steps": args.steps, "num": args.num,
               "real_floor_db": real_floor, "settings": []}
    for setting in [{}] + args.setting:
        pipeline.scheduler = type(pipeline.scheduler).from_config(own, **setting)
        heard = at_tempi(generated_mels(pipeline, args.num, args.steps, args.seed, progress=False), factors,
                         real.shape[-1])
        floor = median_floor(decode(pipeline, heard), pipeline.sample_rate)
        results["settings"].append({"overrides": setting, "floor_db": floor, "gap_db": floor - real_floor})
        print(json.dumps(results["settings"][-1]), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
