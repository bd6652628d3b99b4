"""Loop seams: does every loop file the studio writes wrap without a click, at the model's own tempo
and stretched to others, and how do real drum loops cut the same way compare?

    OMP_NUM_THREADS=1 python -m benchmarks.bench_loop_seams --seeds 40 --tempos 0 80 100 120 140 170

The bundled loops model (`--checkpoint`, loaded as the app loads it, on CPU) makes loops through the
app's own loops workflow (`studio.loops.make_loops` with a `LoopsRequest`: seed, the asked BPM (0: the
model's own tempo, the Loops tab's default), the app's defaults otherwise, 4 repeats), and each written
loop file is read back. A tempo-normalised model generates the same two bars at its reference tempo
whatever tempo is asked, then Rubber Band stretches them (`stretch_to` of its pipeline): so each seed's
clip is generated once, at the reference tempo, and every tempo's request gets it stretched by the
pipeline's own `stretch_to`, through the workflow's own code from there on (key, checks, loop cut,
quality, files). The run checks this once against an uncached generation and records the difference.
`--raw-cache` keeps the clips in an .npz, so the same clips can be measured by another version of the
code (the "before" numbers: this script run in a checkout of the old commit).

Per loop, on the cycle of the written file (`loop_end / repeats` samples): the seam waveform ratio
(`music.loops.seam_jump_ratio`: jump at the wrap / RMS sample-to-sample change; target <= 2 in >= 99%
of loops), the spectral seam ratio (`music.loop_quality.seam_spectral_ratio`), the `smpl` loop points
(start 0, end the file's length) and whether each cycle is exactly its bars at the tempo.

Real loops: drum clips of the corpus test split (`--corpus`, `subset` drums with a labelled BPM), their
first two bars stretched (Rubber Band) from the labelled tempo to each target tempo and cut by the same
`music.loops.loop_from_downbeat` the workflow uses.

Results go to `--out` (JSON) and a Markdown table to stdout.
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from tqdm.auto import tqdm

import music.loops
import studio.loops
from music.audio import load_audio
from music.audiofolder import METADATA_JSONL, read_rows
from music.loop_quality import seam_spectral_ratio
from music.loops import bar_length_in_samples, loop_from_downbeat, read_loop_points, seam_jump_ratio
from music.stretch import stretcher_name, time_stretch
from studio.generation import Workspace, default_seconds
from studio.generation import generate as workflow_generate
from studio.model_source import OneModel
from studio.outputs import OutputStore
from studio.requests import LoopsRequest, StudioLimits

REPEATS = 4  # the app's default loop repeats
TARGET_RATIO = 2.0
TARGET_SHARE = 0.99


class CachedClips:
    """Stands in for `studio.generation.generate` inside the loops workflow: each seed's clip is generated
    once at the model's reference tempo (the workflow's other arguments kept) and stretched to the asked
    tempo by the pipeline's own `stretch_to`, as the pipeline does after generating."""

    def __init__(self, raw: dict[int, np.ndarray]) -> None:
        self.raw = raw  # seed -> [1, 1, samples] at the reference tempo

    def reference_clip(self, model, seed: int, steps: int, **kwargs) -> np.ndarray:
        if seed not in self.raw:
            reference = model.capabilities.reference_bpm
            kwargs.update(bpm=reference, seconds_total=default_seconds(model.capabilities, reference))
            self.raw[seed] = workflow_generate(model, seed, steps, **kwargs).audios
        return self.raw[seed]

    def __call__(self, model, seed: int, steps: int, **kwargs):
        seconds = kwargs["seconds_total"]
        clip = self.reference_clip(model, seed, steps, **{k: v for k, v in kwargs.items() if k != "seconds_total"})
        rate = model.capabilities.sample_rate
        audios = model.pipeline.stretch_to(clip, round(seconds * rate))
        return _result_like(audios, rate)


def _result_like(audios: np.ndarray, sample_rate: int):
    """A `GeneratedAudio` of `audios` (no display image: the workflow draws its spectrogram from the audio)."""
    from models.outputs import GeneratedAudio

    return GeneratedAudio(audios=audios, sample_rate=sample_rate)


class WrapRecorder:
    """Wraps `music.loops.match_wrap` to record how much it changed (where this code has it)."""

    def __init__(self) -> None:
        self.original = getattr(music.loops, "match_wrap", None)
        self.calls: list[dict] = []

    def __call__(self, cycle: np.ndarray, ramp: int) -> np.ndarray:
        matched = self.original(cycle, ramp)
        change = float(np.max(np.abs(np.asarray(matched, np.float64) - cycle))) if matched is not cycle else 0.0
        rms = float(np.sqrt(np.mean(np.asarray(cycle, np.float64) ** 2)))
        self.calls.append({"ratio_before_match": round(seam_jump_ratio(cycle), 4), "ramp_samples": int(ramp),
                           "offset_peak_over_rms": round(change / rms, 4) if rms > 0 else 0.0})
        return matched


def measure_file(path: Path, bars: int, beats_per_bar: int, bpm: float) -> dict:
    """Seam numbers, loop points and exact length of one written loop file."""
    audio, rate = sf.read(str(path), dtype="float32")
    mono = audio if audio.ndim == 1 else audio.mean(axis=1)
    start, end = read_loop_points(path)
    cycle = mono[: end // REPEATS]
    return {"seam_waveform_ratio": round(seam_jump_ratio(cycle), 4),
            "seam_spectral_ratio": round(seam_spectral_ratio(cycle, int(rate)), 4),
            "loop_points_whole_file": start == 0 and end == len(mono),
            "exact_length": len(cycle) == bar_length_in_samples(bars, beats_per_bar, bpm, int(rate))
            and len(mono) == REPEATS * len(cycle)}


def generated_loops(workspace: Workspace, checkpoint: str, bpm: float, seeds: list[int], recorder) -> list[dict]:
    """One loop per seed at `bpm` (0: the model's own tempo) through the app's loops workflow."""
    rows = []
    for seed in tqdm(seeds, desc=f"generated {bpm or 'own':} BPM", leave=False):
        calls_before = len(recorder.calls) if recorder else 0
        request = LoopsRequest(model=checkpoint, seed=seed, randomize_seed=False, bpm=bpm, repeats=REPEATS)
        output = studio.loops.make_loops(workspace, request).outputs[0]
        if output.loop_path is None:
            rows.append({"seed": seed, "no_loop": output.loop_info})
            continue
        row = {"seed": seed, **measure_file(output.loop_path, int(output.settings["bars"]),
                                            int(output.settings["beats_per_bar"]), float(output.settings["bpm"])),
               "workflow_quality": dict(output.quality)}
        if recorder and len(recorder.calls) > calls_before:
            row["match_wrap"] = recorder.calls[-1]
        rows.append(row)
    return rows


def corpus_clips(corpus: Path, count: int) -> list[tuple[Path, float]]:
    """Up to `count` drum clips with a labelled BPM, evenly spread over the metadata's order."""
    rows = [row for row in read_rows(corpus / METADATA_JSONL) if row.get("subset") == "drums" and row.get("bpm")]
    step = max(1, len(rows) // count)
    return [(corpus / row["file_name"], float(row["bpm"])) for row in rows[::step][:count]]


def corpus_loops(clips: list[tuple[Path, float]], bpm: float, sample_rate: int) -> list[dict]:
    """Real clips' first two bars stretched from their labelled tempo to `bpm` and cut the workflow's way."""
    rows = []
    for path, clip_bpm in tqdm(clips, desc=f"corpus {bpm:g} BPM", leave=False):
        audio = load_audio(path, sample_rate)
        two_bars = bar_length_in_samples(2, 4, clip_bpm, sample_rate)
        if len(audio) < two_bars:
            continue
        stretched = time_stretch(audio[:two_bars], sample_rate, bar_length_in_samples(2, 4, bpm, sample_rate))
        loop = loop_from_downbeat(stretched, sample_rate, bpm, repeats=REPEATS)
        cycle = loop.audio[: loop.loop_length]
        rows.append({"file": path.name, "clip_bpm": clip_bpm,
                     "seam_waveform_ratio": round(seam_jump_ratio(cycle), 4),
                     "seam_spectral_ratio": round(seam_spectral_ratio(cycle, sample_rate), 4)})
    return rows


def summarise(rows: list[dict]) -> dict:
    """Share of seams at most `TARGET_RATIO`, median, p99 and max of both seam ratios."""
    waveform = np.array([row["seam_waveform_ratio"] for row in rows if "seam_waveform_ratio" in row])
    spectral = np.array([row["seam_spectral_ratio"] for row in rows if "seam_spectral_ratio" in row])
    if not len(waveform):
        return {"loops": 0}
    summary = {"loops": len(waveform), "no_loop": sum("no_loop" in row for row in rows),
               "share_waveform_at_most_2": round(float(np.mean(waveform <= TARGET_RATIO)), 4),
               "share_waveform_above_3": round(float(np.mean(waveform > 3.0)), 4),
               "median_waveform": round(float(np.median(waveform)), 4),
               "p99_waveform": round(float(np.percentile(waveform, 99)), 4),
               "max_waveform": round(float(waveform.max()), 4),
               "median_spectral": round(float(np.median(spectral)), 4),
               "p90_spectral": round(float(np.percentile(spectral, 90)), 4)}
    if any("exact_length" in row for row in rows):
        summary["all_lengths_exact"] = all(row["exact_length"] for row in rows if "exact_length" in row)
        summary["all_loop_points_whole_file"] = all(row["loop_points_whole_file"] for row in rows
                                                     if "loop_points_whole_file" in row)
    matched = [row["match_wrap"] for row in rows if "match_wrap" in row]
    if matched:
        acted = [call for call in matched if call["offset_peak_over_rms"] > 0]
        summary["match_wrap_acted_share"] = round(len(acted) / len(matched), 4)
        summary["match_wrap_max_offset_over_rms"] = max([call["offset_peak_over_rms"] for call in acted] or [0.0])
    return summary


def check_cache(model, cache: CachedClips, seed: int, bpm: float, steps: int) -> float:
    """Largest sample difference between the cached-and-stretched clip and an uncached generation at `bpm`."""
    seconds = default_seconds(model.capabilities, bpm)
    direct = workflow_generate(model, seed, steps, seconds_total=seconds, bpm=bpm).audios
    cached = cache(model, seed, steps, seconds_total=seconds, bpm=bpm).audios
    if direct.shape != cached.shape:
        return float("inf")
    return float(np.max(np.abs(direct - cached)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--checkpoint", default="checkpoints/loops",
                        help="a tempo-normalised loops pipeline (folder or hub id; default checkpoints/loops)")
    parser.add_argument("--tempos", type=float, nargs="+", default=[0.0, 80.0, 100.0, 120.0, 140.0, 170.0],
                        help="asked tempos in BPM, 0 for the model's own (default 0 80 100 120 140 170)")
    parser.add_argument("--seeds", type=int, default=40, help="seeds 0..N-1, one loop per seed and tempo (default 40)")
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus/test"),
                        help="real clips with a metadata.jsonl (subset, bpm) (default data/corpus/test)")
    parser.add_argument("--corpus-clips", type=int, default=40,
                        help="real drum clips cut at every tempo (default 40)")
    parser.add_argument("--raw-cache", type=Path, default=None,
                        help=".npz of the clips at the reference tempo: read when it exists, written after "
                             "generating (lets another version of the code measure the same clips)")
    parser.add_argument("--label", default="after", help="name of this run in the results (default after)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/loop_seams.json"),
                        help="JSON file for the results (default benchmarks/results/loop_seams.json)")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.corpus_clips < 0:
        parser.error(f"--seeds must be >= 1 and --corpus-clips >= 0, got {args.seeds} and {args.corpus_clips}")
    torch.set_num_threads(args.threads)
    models = OneModel.from_source(args.checkpoint, device="cpu")
    capabilities = models.model.capabilities
    if not capabilities.reference_bpm:
        parser.error(f"{args.checkpoint} has no reference_bpm: this benchmark needs a tempo-normalised model")
    seeds = list(range(args.seeds))
    raw = {}
    if args.raw_cache and args.raw_cache.exists():
        with np.load(args.raw_cache) as stored:
            raw = {int(key.split("_")[1]): stored[key] for key in stored.files}
    cache = CachedClips(raw)
    stored = set(raw)
    for seed in tqdm(seeds, desc="clips at the reference tempo"):
        cache.reference_clip(models.model, seed, LoopsRequest.steps)
    if args.raw_cache and set(cache.raw) != stored:  # only new clips rewrite it (another run may be reading it)
        args.raw_cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(args.raw_cache, **{f"seed_{seed}": clip for seed, clip in cache.raw.items()})
    check_bpm = next((bpm for bpm in args.tempos if bpm), 100.0)
    cache_difference = check_cache(models.model, cache, seeds[0], check_bpm, LoopsRequest.steps)
    studio.loops.generate = cache  # the workflow's own generate call now reads the cached clips
    recorder = WrapRecorder() if hasattr(music.loops, "match_wrap") else None
    if recorder:
        music.loops.match_wrap = recorder
    clips = corpus_clips(args.corpus, args.corpus_clips)
    results = {"label": args.label, "checkpoint": args.checkpoint, "reference_bpm": capabilities.reference_bpm,
               "stretcher": stretcher_name(), "path": "studio.loops.make_loops (the app's loops workflow)",
               "machine": {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
                           "threads": args.threads},
               "cache_check": {"seed": seeds[0], "bpm": check_bpm, "max_abs_difference": cache_difference},
               "target": {"seam_waveform_ratio_at_most": TARGET_RATIO, "share": TARGET_SHARE}, "per_tempo": []}
    with tempfile.TemporaryDirectory() as folder:
        workspace = Workspace(models, OutputStore(Path(folder), max_files=10_000), StudioLimits())
        for bpm in tqdm(args.tempos, desc="tempos"):
            generated = generated_loops(workspace, args.checkpoint, bpm, seeds, recorder)
            real = corpus_loops(clips, bpm or capabilities.reference_bpm, capabilities.sample_rate)
            results["per_tempo"].append({"asked_bpm": bpm or "own", "bpm": bpm or capabilities.reference_bpm,
                                         "generated": summarise(generated), "corpus": summarise(real),
                                         "generated_loops": generated, "corpus_loops": real})
            write_results(args.out, results)  # after every tempo: a stopped run keeps its numbers
    write_results(args.out, results)
    print_table(results)
    return 0


def write_results(out: Path, results: dict) -> None:
    everything = [row for tempo in results["per_tempo"] for row in tempo["generated_loops"]]
    real = [row for tempo in results["per_tempo"] for row in tempo["corpus_loops"]]
    results["overall"] = {"generated": summarise(everything), "corpus": summarise(real)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


def print_table(results: dict) -> None:
    """Per-tempo Markdown table: generated / real."""
    print(f"{results['label']}: seam waveform ratio (target <= {TARGET_RATIO:g} in {100 * TARGET_SHARE:.0f}%)")
    print("| asked BPM | loops | share <= 2 (gen / real) | median (gen / real) | p99 (gen / real) "
          "| spectral median (gen / real) |")
    print("|---|---|---|---|---|---|")
    for tempo in [*results["per_tempo"], {"asked_bpm": "all", **results["overall"]}]:
        gen, real = tempo["generated"], tempo["corpus"]
        if not gen.get("loops"):
            continue
        real_share = f"{100 * real['share_waveform_at_most_2']:.1f}%" if real.get("loops") else "n/a"
        print(f"| {tempo['asked_bpm']} | {gen['loops']} | {100 * gen['share_waveform_at_most_2']:.1f}% / "
              f"{real_share} | {gen['median_waveform']} / {real.get('median_waveform')} | "
              f"{gen['p99_waveform']} / {real.get('p99_waveform')} | "
              f"{gen['median_spectral']} / {real.get('median_spectral')} |")


if __name__ == "__main__":
    raise SystemExit(main())
