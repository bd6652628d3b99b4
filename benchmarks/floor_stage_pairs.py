"""Paired look at a floor stage: the same takes (same seeds, same real clips) decoded without and with the
checkpoint's floor stage, from two `benchmarks.bench_quality` runs (`--no-floor-stage` and the default).

    python -m benchmarks.floor_stage_pairs --off WORK/loops-loops-dpm++-karras-10 \\
        --on WORK/loops-loops-dpm++-karras-10-floor --real WORK/real/test --seed 0 \\
        --figure benchmarks/results/floor-stage-loops.png --out benchmarks/results/floor-stage-pairs.json

Per take: the floor between hits (`evaluation.quality.floor_between_hits`) without and with the stage, and
attack sharpness of the staged take against the plain one (`benchmarks.bench_representation.attack_sharpness`:
onset-strength peak ratio at the plain take's onsets, 10-90% rise times): a stage that leaves hits alone keeps
the ratio near 1 and the rise time unchanged. The figure shows real | without | with, one take a row.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import soundfile as sf

from benchmarks.bench_quality import RATE, corpus_rows, pick_rows
from benchmarks.bench_representation import attack_sharpness
from evaluation.quality import floor_between_hits


def figure(rows: list[tuple[np.ndarray, np.ndarray, np.ndarray, str]], path: Path) -> None:
    """Mel spectrograms real | without | with the stage, one take a row, as a PNG."""
    import librosa
    import librosa.display
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 3, figsize=(15, 2.3 * len(rows)), squeeze=False)
    for row, (real, off, on, title) in enumerate(rows):
        for column, (audio, label) in enumerate(((real, "real: " + title), (off, "generated, no floor stage"),
                                                 (on, "generated, floor stage"))):
            mel = librosa.feature.melspectrogram(y=audio, sr=RATE, n_fft=1024, hop_length=256, n_mels=64)
            librosa.display.specshow(librosa.power_to_db(mel, ref=np.max, top_db=80), sr=RATE, hop_length=256,
                                     x_axis="time", y_axis="mel", ax=axes[row, column])
            axes[row, column].set_title(label[:80], fontsize=8)
            axes[row, column].set_xlabel("")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=55)
    plt.close(fig)


def stage_cost(checkpoint: str, repeats: int = 20) -> dict:
    """Median seconds of the checkpoint's floor stage and of its decoder (Griffin-Lim or vocoder) on one generated
    window's mel (`[1, 1, bands, frames]`), in the same process, and their ratio."""
    import time

    import torch

    from models.loading import load_pipeline
    from training.floor_stage import generated_mels

    pipeline = load_pipeline(checkpoint, device="cpu")
    if pipeline.floor_stage is None:
        raise ValueError(f"{checkpoint} has no floor stage to time.")
    mel = generated_mels(pipeline, 1, 2, progress=False)
    samples = mel.shape[-1] * pipeline.mel.config.hop_length

    def median_seconds(work) -> float:
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            work()
            times.append(time.perf_counter() - started)
        return float(np.median(times))

    with torch.no_grad():
        stage = median_seconds(lambda: pipeline.floor_stage(mel, pipeline.mel.db_per_decade))
        decoder = median_seconds(lambda: pipeline.frames_to_audio(mel, samples))
    return {"stage_s": stage, "decoder_s": decoder, "stage_over_decoder": stage / decoder,
            "threads": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cost", default=None, metavar="CHECKPOINT",
                        help="also time CHECKPOINT's floor stage against its decoder on one window (same process)")
    parser.add_argument("--off", type=Path, required=True, help="bench_quality's generated folder without the stage")
    parser.add_argument("--on", type=Path, required=True, help="the same run's folder with the stage")
    parser.add_argument("--real", type=Path, required=True, help="bench_quality's real/test folder (cut real clips)")
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus"), help="the demo corpus folder")
    parser.add_argument("--seed", type=int, default=0, help="the runs' --seed (which real clips were picked)")
    parser.add_argument("--num", type=int, default=32, help="the runs' --num")
    parser.add_argument("--shown", type=int, default=4, help="takes in the figure (the first ones)")
    parser.add_argument("--figure", type=Path, default=None, help="write the PNG here")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON here")
    args = parser.parse_args(argv)
    rows = pick_rows(corpus_rows(args.corpus, "test", 4.0), "loops", args.num, args.seed)
    takes = []
    for index, row in enumerate(rows):
        off_path, on_path = args.off / f"gen-{index:03d}.wav", args.on / f"gen-{index:03d}.wav"
        if not (off_path.is_file() and on_path.is_file()):
            parser.exit(2, f"floor_stage_pairs: missing {off_path} or {on_path}\n")
        off, on = sf.read(off_path, dtype="float32")[0], sf.read(on_path, dtype="float32")[0]
        real = sf.read(args.real / (Path(row["file_name"]).stem + ".wav"), dtype="float32")[0]
        takes.append({"bpm": row.get("bpm"), "floor_off_db": floor_between_hits(off, RATE),
                      "floor_on_db": floor_between_hits(on, RATE), "floor_real_db": floor_between_hits(real, RATE),
                      **attack_sharpness(off, on), "audio": (real, off, on, row["text"])})
    keys = ("floor_off_db", "floor_on_db", "floor_real_db", "onset_peak_ratio", "rise_ms_original", "rise_ms")
    summary = {key: float(np.nanmedian([take.get(key, np.nan) for take in takes])) for key in keys}
    summary["floor_change_db_median_paired"] = float(np.nanmedian(
        [take["floor_on_db"] - take["floor_off_db"] for take in takes]))
    summary["takes"] = len(takes)
    if args.cost:
        summary["cost"] = stage_cost(args.cost)
    print(json.dumps(summary, indent=1))
    if args.figure:
        figure([take["audio"] for take in takes[: args.shown]], args.figure)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        per_take = [{key: value for key, value in take.items() if key != "audio"} for take in takes]
        args.out.write_text(json.dumps({"summary": summary, "takes": per_take}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
