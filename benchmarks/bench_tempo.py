"""Tempo as a control: do generated loops come out at the asked BPM, how do their seams compare with
real loops cut the same way, and what does the tempo control add to each loop's time?

    python -m benchmarks.bench_tempo --loops-per-tempo 50 --tempos 70 100 128 174

For each target tempo, the bundled loops model (`--checkpoint`, loaded as the app loads it, on CPU)
makes `--loops-per-tempo` loops through the app's own loops workflow (`studio.loops.make_loops` with a
`LoopsRequest`: the target BPM, the app's defaults (its scheduler, 20 steps, two bars), seeds 0, 1,
2, ..., 4 repeats): generated at the model's reference tempo (117.1875 BPM), time-stretched to the
target with Rubber Band, checked, cut at the downbeat and written as the app writes them, with the
same key, silence and loop-quality steps. Reported per tempo:

- the share of loops whose tempo, estimated by the project's own estimator (`music.tempo`), is
  within 2% of the target (strict, and with half/double tempo allowed), with a 95% Wilson interval;
  the issue's goal is at least 95% (the best published text-to-music model: about 61%);
- seam metrics (`music.loop_quality`: waveform jump ratio, spectral seam ratio) and the
  beat-interval CV, medians, for the generated loops and for real corpus clips (`--corpus`, the
  test split, clips with a labelled BPM) stretched from their labelled tempo to the target and cut
  the same way;
- the time per loop of the whole workflow (generation, stretch, checks, loop cut, files) and, of it,
  the loop cut (re-timed on the written clip), medians in seconds.

Results go to `--out` (JSON) and a Markdown table to stdout.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from tqdm.auto import tqdm

from evaluation.intervals import wilson_interval
from music.audio import load_audio
from music.audiofolder import METADATA_JSONL, read_rows
from music.loop_quality import loop_quality
from music.loops import bar_length_in_samples, loop_from_downbeat
from music.stretch import stretcher_name, time_stretch
from music.tempo import estimate_bpm, matching_factor
from studio.generation import Workspace
from studio.loops import make_loops
from studio.model_source import OneModel
from studio.outputs import OutputStore
from studio.requests import LoopsRequest, StudioLimits

APP_STEPS = LoopsRequest.steps  # the Loops tab's default
REPEATS = 4  # the app's default loop repeats
TOLERANCE = 0.02


def measure(audio: np.ndarray, sample_rate: int, loop_length: int, bars: int, beats_per_bar: int, quality: dict,
            target_bpm: float) -> dict:
    """Estimated tempo, whether it matches, and the loop-quality numbers (`quality`) of one tiled loop
    (`audio`, mono, at `sample_rate` Hz; one cycle is `loop_length` samples of `bars` bars)."""
    estimated = estimate_bpm(audio, sample_rate)
    return {"estimated_bpm": round(estimated, 3),
            "within_2pct": abs(estimated - target_bpm) <= TOLERANCE * target_bpm,
            "within_2pct_octave": matching_factor(estimated, target_bpm, TOLERANCE) is not None,
            "samples": int(audio.shape[-1]),
            "exact_length": loop_length == round(bars * beats_per_bar * 60 / target_bpm * sample_rate),
            **quality}


def measure_written(output, bpm: float) -> dict:
    """`measure` of the loop file the workflow wrote, with the loop quality it measured."""
    audio, sample_rate = sf.read(str(output.loop_path), dtype="float32")
    mono = audio if audio.ndim == 1 else audio.mean(axis=1)
    return measure(mono, int(sample_rate), mono.shape[-1] // REPEATS, int(output.settings["bars"]),
                   int(output.settings["beats_per_bar"]), dict(output.quality), bpm)


def generated_loops(workspace: Workspace, checkpoint: str, bpm: float, count: int) -> list[dict]:
    """`count` loops at `bpm` made by the app's loops workflow, with timings."""
    rows = []
    for seed in tqdm(range(count), desc=f"generated {bpm:g} BPM", leave=False):
        request = LoopsRequest(model=checkpoint, seed=seed, randomize_seed=False, steps=APP_STEPS, bpm=bpm,
                               repeats=REPEATS)
        start = time.perf_counter()
        output = make_loops(workspace, request).outputs[0]
        made = time.perf_counter()
        if output.loop_path is None:  # the workflow found no loop (e.g. a near-silent clip): a miss
            rows.append({"seed": seed, "workflow_s": round(made - start, 4), "within_2pct": False,
                         "within_2pct_octave": False, "exact_length": False, "no_loop": output.loop_info})
            continue
        clip, sample_rate = sf.read(str(output.audio_path), dtype="float32")
        cut_start = time.perf_counter()
        loop_from_downbeat(clip if clip.ndim == 1 else clip.mean(axis=1), sample_rate, bpm, repeats=REPEATS)
        cut_s = time.perf_counter() - cut_start
        row = measure_written(output, bpm)
        row.update(seed=seed, workflow_s=round(made - start, 4), loop_s=round(cut_s, 4))
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
        numbers = measure(loop.audio, loop.sample_rate, loop.loop_length, loop.bars, loop.beats_per_bar,
                          loop_quality(loop).to_dict(), bpm)
        rows.append({"file": path.name, "clip_bpm": clip_bpm, **numbers})
    return rows


def median(rows: list[dict], key: str) -> float | None:
    values = [row[key] for row in rows if row.get(key) is not None]
    return round(statistics.median(values), 4) if values else None


def summarise(rows: list[dict]) -> dict:
    hits = sum(row["within_2pct"] for row in rows)
    return {
        "loops": len(rows),
        "share_within_2pct": round(hits / len(rows), 4) if rows else None,
        "ci95_within_2pct": tuple(round(bound, 4) for bound in wilson_interval(hits, len(rows))),
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
    models = OneModel.from_source(args.checkpoint, device="cpu")
    capabilities = models.model.capabilities
    if not capabilities.reference_bpm:
        parser.error(f"{args.checkpoint} has no reference_bpm: this benchmark needs a tempo-normalised model")
    clips = corpus_clips(args.corpus, args.corpus_per_tempo or args.loops_per_tempo)
    with tempfile.TemporaryDirectory() as folder:
        # The app's limits, but room for long runs: the budget would refuse nothing of this size anyway.
        workspace = Workspace(models, OutputStore(Path(folder), max_files=10_000), StudioLimits())
        per_tempo = []
        for bpm in tqdm(args.tempos, desc="tempos"):
            generated = generated_loops(workspace, args.checkpoint, bpm, args.loops_per_tempo)
            real = corpus_loops(clips, bpm, capabilities.sample_rate)
            per_tempo.append({"target_bpm": bpm, "generated": summarise(generated), "corpus": summarise(real),
                              "median_workflow_s": median(generated, "workflow_s"),
                              "median_loop_cut_s": median(generated, "loop_s"),
                              "generated_loops": generated, "corpus_loops": real})
            write_results(args, capabilities, per_tempo)  # after every tempo: a stopped run keeps its numbers
    results = write_results(args, capabilities, per_tempo)
    print_table(results)
    return 0


def write_results(args: argparse.Namespace, capabilities, per_tempo: list[dict]) -> dict:
    """The results so far, written to `args.out`."""
    everything = [row for tempo in per_tempo for row in tempo["generated_loops"]]
    results = {
        "machine": {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
                    "threads": args.threads},
        "checkpoint": args.checkpoint, "reference_bpm": capabilities.reference_bpm, "stretcher": stretcher_name(),
        "path": "studio.loops.make_loops (the app's loops workflow)",
        "steps": APP_STEPS, "repeats": REPEATS, "tolerance": TOLERANCE, "goal_share": 0.95,
        "overall": {**summarise(everything),
                    "median_loop_cut_s_per_loop": median(everything, "loop_s"),
                    "median_workflow_s_per_loop": median(everything, "workflow_s")},
        "per_tempo": per_tempo,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results


def print_table(results: dict) -> None:
    """The per-tempo Markdown table and the overall line."""
    per_tempo = results["per_tempo"]
    print("| target BPM | loops | within 2% | 95% CI | seam waveform (gen / real) | seam spectral (gen / real) "
          "| beat CV (gen / real) | workflow s | loop cut s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for tempo in per_tempo:
        gen, real = tempo["generated"], tempo["corpus"]
        print(f"| {tempo['target_bpm']:g} | {gen['loops']} | {100 * gen['share_within_2pct']:.0f}% | "
              f"{100 * gen['ci95_within_2pct'][0]:.0f}-{100 * gen['ci95_within_2pct'][1]:.0f}% | "
              f"{gen['median_seam_waveform_ratio']} / {real['median_seam_waveform_ratio']} | "
              f"{gen['median_seam_spectral_ratio']} / {real['median_seam_spectral_ratio']} | "
              f"{gen['median_beat_interval_cv']} / {real['median_beat_interval_cv']} | "
              f"{tempo['median_workflow_s']} | {tempo['median_loop_cut_s']} |")
    overall = results["overall"]
    print(f"overall: {100 * overall['share_within_2pct']:.1f}% of {overall['loops']} loops within 2% "
          f"(goal 95%); {overall['median_workflow_s_per_loop']} s per loop through the workflow, of which "
          f"{overall['median_loop_cut_s_per_loop']} s cutting the loop")


if __name__ == "__main__":
    raise SystemExit(main())
