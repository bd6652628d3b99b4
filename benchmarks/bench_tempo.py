"""Tempo as a control: do generated loops come out at the asked BPM, how do their seams compare with
real loops cut the same way, and what does the tempo control add to each loop's time?

    python -m benchmarks.bench_tempo --loops-per-tempo 50 --tempos 70 100 128 174

For each target tempo, the bundled loops model (`--checkpoint`, loaded as the app loads it, on CPU)
makes `--loops-per-tempo` clips of two bars at its reference tempo (117.1875 BPM) with the app's
defaults (its scheduler, 20 steps), seeds 0, 1, 2, ...; each is then time-stretched to the target
with Rubber Band (`pipeline.stretch_to`, what `pipeline(bpm=...)` does) and made into the app's
loop file (`music.loops.loop_from_downbeat`, 4 repeats). Reported per tempo:

- the share of loops whose tempo, estimated by the project's own estimator (`music.tempo`), is
  within 2% of the target (strict, and with half/double tempo allowed), with a 95% Wilson interval;
  the issue's goal is at least 95% (the best published text-to-music model: about 61%);
- seam metrics (`music.loop_quality`: waveform jump ratio, spectral seam ratio) and the
  beat-interval CV, medians, for the generated loops and for real corpus clips (`--corpus`, the
  test split, clips with a labelled BPM) stretched from their labelled tempo to the target and cut
  the same way;
- the added time per loop: the stretch and the loop cut (what tempo control costs on top of
  generation), next to the generation time, medians in seconds.

Results go to `--out` (JSON) and a Markdown table to stdout.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from models.loading import load_pipeline
from music.audio import load_audio
from music.audiofolder import METADATA_JSONL, read_rows
from music.loop_quality import loop_quality
from music.loops import bar_length_in_samples, loop_from_downbeat
from music.stretch import samples_at_tempo, stretcher_name, time_stretch
from music.tempo import estimate_bpm, matching_factor

APP_STEPS = 20  # webapp/handlers.py: the steps slider's default
REPEATS = 4  # the app's default loop repeats
TOLERANCE = 0.02


def wilson_interval(successes: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a share (fractions)."""
    if total == 0:
        return (math.nan, math.nan)
    share = successes / total
    centre = (share + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(share * (1 - share) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return (round(centre - half, 4), round(centre + half, 4))


def measure(loop, target_bpm: float) -> dict:
    """Estimated tempo, whether it matches, and the loop-quality numbers of one loop."""
    estimated = estimate_bpm(loop.audio, loop.sample_rate)
    quality = loop_quality(loop).to_dict()
    return {"estimated_bpm": round(estimated, 3),
            "within_2pct": abs(estimated - target_bpm) <= TOLERANCE * target_bpm,
            "within_2pct_octave": matching_factor(estimated, target_bpm, TOLERANCE) is not None,
            "samples": int(loop.audio.shape[-1]),
            "exact_length": loop.loop_length == round(loop.bars * loop.beats_per_bar * 60 / target_bpm
                                                      * loop.sample_rate),
            **quality}


def generated_loops(pipeline, bpm: float, count: int) -> list[dict]:
    """`count` loops at `bpm` from the model, with timings."""
    reference = float(pipeline.reference_bpm)
    two_bars = 2 * pipeline.beats_per_bar * 60.0 / reference
    rows = []
    for seed in tqdm(range(count), desc=f"generated {bpm:g} BPM", leave=False):
        generator = torch.Generator("cpu").manual_seed(seed)
        start = time.perf_counter()
        output = pipeline(batch_size=1, audio_length_in_s=two_bars, num_inference_steps=APP_STEPS,
                          generator=generator)
        generated = time.perf_counter()
        samples = samples_at_tempo(output.audios.shape[-1], reference, bpm)
        stretched = pipeline.stretch_to(output.audios, samples)[0, 0]
        stretch_done = time.perf_counter()
        loop = loop_from_downbeat(stretched, pipeline.sample_rate, bpm, repeats=REPEATS)
        loop_done = time.perf_counter()
        row = measure(loop, bpm)
        measured = time.perf_counter()
        row.update(seed=seed, generate_s=round(generated - start, 4), stretch_s=round(stretch_done - generated, 4),
                   loop_s=round(loop_done - stretch_done, 4), metrics_s=round(measured - loop_done, 4))
        rows.append(row)
    return rows


def corpus_clips(corpus: Path, count: int) -> list[tuple[Path, float]]:
    """The first `count` clips (in file order, every subset) with a labelled BPM, from a metadata.jsonl."""
    rows = read_rows(corpus / METADATA_JSONL)
    clips = [(corpus / row["file_name"], float(row["bpm"])) for row in rows if row.get("bpm")]
    step = max(1, len(clips) // count)
    return clips[::step][:count]


def corpus_loops(clips: list[tuple[Path, float]], bpm: float, sample_rate: int) -> list[dict]:
    """Real clips (which start on a downbeat) stretched from their labelled tempo to `bpm` and cut the
    generated loops' way."""
    rows = []
    for path, clip_bpm in tqdm(clips, desc=f"corpus {bpm:g} BPM", leave=False):
        audio = load_audio(path, sample_rate)
        two_bars = round(2 * 4 * 60.0 / clip_bpm * sample_rate)
        if len(audio) < two_bars:
            continue
        stretched = time_stretch(audio[:two_bars], sample_rate, bar_length_in_samples(2, 4, bpm, sample_rate))
        loop = loop_from_downbeat(stretched, sample_rate, bpm, repeats=REPEATS)
        rows.append({"file": path.name, "clip_bpm": clip_bpm, **measure(loop, bpm)})
    return rows


def median(rows: list[dict], key: str) -> float | None:
    values = [row[key] for row in rows if row.get(key) is not None]
    return round(statistics.median(values), 4) if values else None


def summarise(rows: list[dict]) -> dict:
    hits = sum(row["within_2pct"] for row in rows)
    return {
        "loops": len(rows),
        "share_within_2pct": round(hits / len(rows), 4) if rows else None,
        "ci95_within_2pct": wilson_interval(hits, len(rows)),
        "share_within_2pct_octave_allowed": round(np.mean([row["within_2pct_octave"] for row in rows]), 4)
        if rows else None,
        "all_lengths_exact": all(row["exact_length"] for row in rows),
        "median_seam_waveform_ratio": median(rows, "seam_waveform_ratio"),
        "median_seam_spectral_ratio": median(rows, "seam_spectral_ratio"),
        "median_beat_interval_cv": median(rows, "beat_interval_cv"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--checkpoint", default="checkpoints/loops",
                        help="a tempo-normalised loops pipeline (folder or hub id; default checkpoints/loops)")
    parser.add_argument("--tempos", type=float, nargs="+", default=[70.0, 100.0, 128.0, 174.0],
                        help="target tempos in BPM (default 70 100 128 174)")
    parser.add_argument("--loops-per-tempo", type=int, default=50,
                        help="generated loops per target tempo, seeds 0..N-1 (default 50)")
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus/test"),
                        help="real clips with a metadata.jsonl giving each one's bpm (default data/corpus/test)")
    parser.add_argument("--corpus-per-tempo", type=int, default=None,
                        help="real clips per target tempo (default: as many as --loops-per-tempo)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/tempo.json"),
                        help="JSON file for the results (default benchmarks/results/tempo.json)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    pipeline = load_pipeline(args.checkpoint, device="cpu")
    if not getattr(pipeline, "reference_bpm", None):
        parser.error(f"{args.checkpoint} has no reference_bpm: this benchmark needs a tempo-normalised model")
    clips = corpus_clips(args.corpus, args.corpus_per_tempo or args.loops_per_tempo)
    per_tempo = []
    for bpm in tqdm(args.tempos, desc="tempos"):
        generated = generated_loops(pipeline, bpm, args.loops_per_tempo)
        real = corpus_loops(clips, bpm, pipeline.sample_rate)
        per_tempo.append({"target_bpm": bpm, "generated": summarise(generated), "corpus": summarise(real),
                          "median_generate_s": median(generated, "generate_s"),
                          "median_stretch_s": median(generated, "stretch_s"),
                          "median_loop_cut_s": median(generated, "loop_s"),
                          "median_metrics_s": median(generated, "metrics_s"),
                          "generated_loops": generated, "corpus_loops": real})
        write_results(args, pipeline, per_tempo)  # after every tempo, so a stopped run keeps what it measured
    results = write_results(args, pipeline, per_tempo)
    print_table(results)
    return 0


def write_results(args: argparse.Namespace, pipeline, per_tempo: list[dict]) -> dict:
    """The results so far, written to `args.out`."""
    everything = [row for tempo in per_tempo for row in tempo["generated_loops"]]
    added = [row["stretch_s"] + row["loop_s"] for row in everything]
    results = {
        "machine": {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
                    "threads": args.threads},
        "checkpoint": args.checkpoint, "reference_bpm": pipeline.reference_bpm, "stretcher": stretcher_name(),
        "steps": APP_STEPS, "repeats": REPEATS, "tolerance": TOLERANCE, "goal_share": 0.95,
        "overall": {**summarise(everything),
                    "median_added_s_per_loop": round(statistics.median(added), 4),
                    "median_generate_s_per_loop": median(everything, "generate_s")},
        "per_tempo": per_tempo,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results


def print_table(results: dict) -> None:
    """The per-tempo Markdown table and the overall line."""
    per_tempo = results["per_tempo"]
    print("| target BPM | loops | within 2% | 95% CI | seam waveform (gen / real) | seam spectral (gen / real) "
          "| beat CV (gen / real) | generate s | stretch + cut s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for tempo in per_tempo:
        gen, real = tempo["generated"], tempo["corpus"]
        print(f"| {tempo['target_bpm']:g} | {gen['loops']} | {100 * gen['share_within_2pct']:.0f}% | "
              f"{100 * gen['ci95_within_2pct'][0]:.0f}-{100 * gen['ci95_within_2pct'][1]:.0f}% | "
              f"{gen['median_seam_waveform_ratio']} / {real['median_seam_waveform_ratio']} | "
              f"{gen['median_seam_spectral_ratio']} / {real['median_seam_spectral_ratio']} | "
              f"{gen['median_beat_interval_cv']} / {real['median_beat_interval_cv']} | "
              f"{tempo['median_generate_s']} | "
              f"{tempo['median_stretch_s'] + tempo['median_loop_cut_s']:.3f} |")
    overall = results["overall"]
    print(f"overall: {100 * overall['share_within_2pct']:.1f}% of {overall['loops']} loops within 2% "
          f"(goal 95%); added {overall['median_added_s_per_loop']:.3f} s per loop against "
          f"{overall['median_generate_s_per_loop']:.2f} s to generate")


if __name__ == "__main__":
    raise SystemExit(main())
