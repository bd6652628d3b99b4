"""How close a checkpoint's output comes to the real clips it was trained to imitate (the models issue's measures).

    python -m benchmarks.bench_quality checkpoints/loops --kind loops --out benchmarks/results/quality-loops.json
    python -m benchmarks.bench_quality checkpoints/text --kind text --out benchmarks/results/quality-text.json

Real clips: the corpus's test split (loops: its drum clips; text: 13 clips from each of five
contrasting families, drums, bass, chords, melody and chorale, with their captions as prompts),
each cut to its first `--seconds`. Generations: one per real clip, made by the app's own workflows
(text: `studio.text_to_audio` with the caption as prompt; loops: the raw clip of `studio.loops`), at
the app's defaults (the model's scheduler and step count, guidance 3, `--seconds` long, fixed seeds),
at the real clip's tempo for tempo-normalised models (the app takes the BPM from the prompt or the
BPM field).

Measures, each against the real clips in the same run:
- broken-clip rate: takes the checkpoint's quality gate flags (`music.take_quality`, its
  `quality_gate.json`; the workflows' regeneration is off here, so this is the model's own rate); the
  gate's rate on real test and valid clips is reported too, and must stay at or below 2%;
- noise washes: share of generations whose loud-frame spectral flatness is above the 99th percentile
  of the real test clips of their kind (loops: drums; text: the prompt's family);
- floor between hits (`evaluation.quality.floor_between_hits`): median over clips of the quietest
  frame between onsets, dB below the clip's loud level, generated minus real;
- classifier two-sample test accuracy (0.5 = indistinguishable);
- median pulse clarity, generated / real;
- FAD with `clap-bundled` and `mel-stats` against test clips, and the real floor FAD(valid, test)
  at the same number of clips;
- text: CLAP score of generations with their prompts / of the real clips with their captions, and
  a confusion matrix of families (each generated clip's nearest real-family centroid in CLAP space);
- memorization: share of generations flagged as copies of training clips (thresholds at 1% false
  positives on held-out valid clips);
- the R^2 of the x0 estimate the model implies on real windows at timesteps 0..999, against the
  per-pixel data mean (below 0 means worse than predicting the mean).

Sampling levers (`--guidance`, `--guidance-interval`, `--steps`, `--scheduler`, `--scheduler-option`,
`--gl-iters`) change one
setting against the defaults; `--quick` keeps only the per-clip measures and the two-sample test (no
FAD, memorization, long clips or x0 R^2) so that a sweep of settings stays affordable on CPU:

    python -m benchmarks.bench_quality checkpoints/text --kind text --num 40 --quick --steps 10 --guidance 4.5
    python -m benchmarks.bench_quality checkpoints/text --kind text --num 40 --quick --steps 14 \
        --guidance-interval 0.28 5.42

Each result counts the UNet evaluations per clip (batch items through the UNet: a guided step is two, an
unguided one), the measure of sampling cost that a loaded machine cannot blur.
"""
from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from diffusers import DDPMScheduler
from tqdm import tqdm

from evaluation.embedders import get_embedder
from evaluation.embedding import embed_files
from evaluation.fad import fad
from evaluation.quality import (
    c2st_accuracy,
    c2st_features,
    floor_between_hits,
    load_gate,
    measure_take,
    pulse_clarity,
)
from models.backends import as_generator
from models.loading import load_guidance_unet, load_pipeline
from models.schedulers import check_guidance_interval
from music.audiofolder import METADATA_JSONL, read_rows
from music.stretch import samples_at_tempo, time_stretch
from music.take_quality import kind_of_prompt, kind_of_row
from studio.generation import Workspace
from studio.loops import make_loops
from studio.model_source import OneModel
from studio.outputs import OutputStore
from studio.requests import LoopsRequest, StudioLimits, TextToAudioRequest
from studio.text_to_audio import text_to_audio
from training.recipe import x0_estimate

FAMILIES = ("drums", "bass", "chords", "melody", "chorale")
RATE = 16000


def family_of(row: dict) -> str | None:
    """One of `FAMILIES` for a corpus metadata row (None for band clips and anything else)."""
    if row.get("subset") == "drums":
        return "drums"
    if row.get("subset") == "classical":
        return "chorale"
    return {"bass line": "bass", "chords": "chords", "melody": "melody", "arpeggio": "melody"}.get(row.get("part"))


def corpus_rows(corpus: Path, split: str, seconds: float) -> list[dict]:
    """Metadata rows of a split with their audio path and family; clips shorter than `seconds` are left out."""
    rows = []
    for row in read_rows(corpus / split / METADATA_JSONL):
        if row["seconds_total"] + 1e-6 >= seconds:
            rows.append(dict(row, path=str(corpus / split / row["file_name"]), family=family_of(row)))
    return rows


def pick_rows(rows: list[dict], kind: str, count: int, seed: int) -> list[dict]:
    """Loops: `count` drum clips; text: `count // 5` (at least 13) clips of each family."""
    rng = np.random.default_rng(seed)
    if kind == "loops":
        drums = [row for row in rows if row["family"] == "drums"]
        return [drums[i] for i in sorted(rng.permutation(len(drums))[:count])]
    per_family = max(1, round(count / len(FAMILIES)))
    picked = []
    for family in FAMILIES:
        members = [row for row in rows if row["family"] == family]
        picked += [members[i] for i in sorted(rng.permutation(len(members))[:per_family])]
    return picked


def cut_clip(path: str, seconds: float) -> np.ndarray:
    """The first `seconds` of a corpus clip, mono, at 16 kHz."""
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    if rate != RATE:
        raise ValueError(f"{path} is at {rate} Hz; this benchmark expects the 16 kHz demo corpus.")
    return audio.mean(axis=1)[: round(seconds * RATE)]


def write_real(rows: list[dict], seconds: float, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for row in rows:
        path = folder / (Path(row["file_name"]).stem + ".wav")
        if not path.exists():
            sf.write(path, cut_clip(row["path"], seconds), RATE)
        paths.append(path)
    return paths


def generate(workspace: Workspace, checkpoint: str, steps: int, rows: list[dict], kind: str, seconds: float,
             seed: int, folder: Path, guidance: float | None = None) -> tuple[list[Path], float, list[list[str]]]:
    """One clip per row through the app's workflow (text: Text to audio with its caption as prompt; loops:
    the Loops tab's raw clip), at its tempo for tempo-normalised models; median seconds per clip; and each
    take's quality-gate reasons as the workflow judged it (before the stretch to the row's tempo,
    `studio.take_gate.judged_audio`). `guidance`: the text request's guidance scale (None: the tab's default)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths, times, reasons = [], [], []
    tempo_model = workspace.registry.model.capabilities.reference_bpm is not None
    for index, row in enumerate(tqdm(rows, desc=f"generating {kind}", unit="clip")):
        bpm = float(row["bpm"]) if tempo_model and row.get("bpm") else 0.0
        started = time.perf_counter()
        if kind == "text":
            extra = {} if guidance is None else {"guidance_scale": guidance}
            result = text_to_audio(workspace, TextToAudioRequest(
                model=checkpoint, prompt=row["text"], seconds_total=seconds, steps=steps, seed=seed + index,
                randomize_seed=False, bpm=bpm, **extra))
        else:
            result = make_loops(workspace, LoopsRequest(
                model=checkpoint, clip_seconds=seconds, steps=steps, seed=seed + index, randomize_seed=False, bpm=bpm))
        times.append(time.perf_counter() - started)
        audio, rate = sf.read(str(result.outputs[0].audio_path), dtype="float32")
        path = folder / f"gen-{index:03d}.wav"
        sf.write(path, audio, rate)
        paths.append(path)
        reasons.append(list(result.outputs[0].take.reasons[-1]) if result.outputs[0].take else [])
    return paths, float(np.median(times)), reasons


@torch.no_grad()
def count_unet_items(pipeline, component: str = "denoiser") -> list[int]:
    """A one-element list that counts the batch items sent through `pipeline`'s UNet (or another `component`,
    e.g. the weak `guidance_unet`; none: stays 0) from now on (a guided step of one clip counts 2, an unguided
    one 1)."""
    count = [0]

    def hook(module, args, kwargs) -> None:
        sample = args[0] if args else kwargs["sample"]
        count[0] += int(sample.shape[0])

    module = getattr(pipeline, component, None)
    if module is not None:
        module.register_forward_pre_hook(hook, with_kwargs=True)
    return count


def vocode(pipeline, audio: np.ndarray, bpm: float | None) -> np.ndarray:
    """A real clip through the model's representation only: (stretch to the reference tempo,) mel,
    Griffin-Lim, (stretch back): the best any model of this representation can sound."""
    reference = getattr(pipeline, "reference_bpm", None)
    original = len(audio)
    if reference is not None and bpm:
        audio = time_stretch(audio, RATE, samples_at_tempo(original, bpm, reference))
    power = pipeline.mel.audio_to_mel_power(torch.from_numpy(audio.astype(np.float32))[None])
    out = pipeline.frames_to_audio(power[:, None], len(audio))[0, 0]
    return time_stretch(out, RATE, original) if len(out) != original else out


def load_audio(paths: list[Path]) -> list[np.ndarray]:
    return [sf.read(path, dtype="float32")[0] for path in paths]


def parse_option(text: str) -> tuple[str, object]:
    """`KEY=VALUE` -> (key, value); the value read as JSON (true, 0.5, "karras"), else kept as a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def scheduler_with(scheduler, options: dict):
    """`scheduler` rebuilt with `options` overriding entries of its config. A whole dict keeps entries its
    __init__ does not take (e.g. `sigma_max`, which diffusers' Karras conversion reads from the config), where
    keyword overrides would drop them silently."""
    return type(scheduler).from_config({**scheduler.config, **options})


def wash_share(generated: list[np.ndarray], rows: list[dict], real: list[np.ndarray], real_rows: list[dict],
               kind: str, percentile: float = 99.0) -> dict:
    """Share of generations whose loud-frame flatness is above the `percentile` of real clips of their kind."""
    group = (lambda row: "drums") if kind == "loops" else (lambda row: row["family"])
    flatness: dict[str, list[float]] = {}
    for audio, row in zip(real, real_rows):
        flatness.setdefault(group(row), []).append(measure_take(audio, RATE).median_flatness)
    limits = {name: float(np.percentile(values, percentile)) for name, values in flatness.items()}
    washed = [measure_take(audio, RATE).median_flatness > limits[group(row)] for audio, row in zip(generated, rows)]
    by_group = {name: float(np.mean([w for w, row in zip(washed, rows) if group(row) == name]))
                for name in sorted({group(row) for row in rows})}
    return {"generated": float(np.mean(washed)), "by_kind": by_group, "flatness_limits": limits,
            "percentile": percentile}


def floor_report(generated: list[np.ndarray], real: list[np.ndarray], rows: list[dict]) -> dict:
    """`floor_between_hits` medians (dB below the loud level) of generated and real clips, and their gap."""
    gen = np.array([floor_between_hits(audio, RATE) for audio in generated])
    ref = np.array([floor_between_hits(audio, RATE) for audio in real])
    report = {"generated_db": float(np.nanmedian(gen)), "real_db": float(np.nanmedian(ref))}
    report["gap_db"] = report["generated_db"] - report["real_db"]
    families = sorted({row["family"] for row in rows if row.get("family")})
    if len(families) > 1:
        report["gap_db_by_family"] = {
            family: float(np.nanmedian(gen[[row["family"] == family for row in rows]])
                          - np.nanmedian(ref[[row["family"] == family for row in rows]]))
            for family in families}
    return report


@torch.no_grad()
def x0_r2(pipeline, rows: list[dict], kind: str, timesteps: list[int], count: int = 32,
          seed: int = 0) -> dict[int, float]:
    """R^2 of the model's implied x0 on the first window of real clips, cut as in training.

    Tempo-normalised models: the whole clip stretched to the reference tempo, and (loops) only clips
    that fill a window, as their training windows do. Other models: the clip's first window.
    """
    windows, prompts, totals = [], [], []
    reference = getattr(pipeline, "reference_bpm", None)
    for row in rows:
        audio = cut_clip(row["path"], 3600.0)
        if reference is not None and row.get("bpm"):
            audio = time_stretch(audio, RATE, samples_at_tempo(len(audio), float(row["bpm"]), reference))
            if kind == "loops" and len(audio) < pipeline.mel.samples_per_image:
                continue
        images, _ = pipeline.audio_to_windows(audio.astype(np.float32))
        windows.append(images[:1])
        prompts.append(row.get("text") or "")
        totals.append(len(audio) / RATE)
        if len(windows) == count:
            break
    rows = rows[: len(windows)]
    clean = torch.cat(windows).float()
    schedule = DDPMScheduler.from_config(pipeline.scheduler.config)
    mean = clean.mean(dim=0, keepdim=True)
    total = float(((clean - mean) ** 2).sum())
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(seed))
    if kind == "text":
        text = pipeline.encode_prompt(prompts)
        predict = pipeline.make_noise_predictor(text, None, torch.zeros(len(rows)), torch.tensor(totals), 1.0)
    else:
        predict = lambda latents, timestep: pipeline.unet(latents, timestep).sample
    scores = {}
    for timestep in timesteps:
        steps = torch.full((len(rows),), timestep, dtype=torch.long)
        noisy = schedule.add_noise(clean, noise, steps)
        estimate = x0_estimate(predict(noisy, torch.tensor(timestep)), noisy, steps, schedule).clamp(-3, 3)
        scores[timestep] = 1.0 - float(((estimate - clean) ** 2).sum()) / total
    return scores


def spectrogram_figure(real: list[np.ndarray], generated: list[np.ndarray], titles: list[str], path: Path) -> None:
    """Mel spectrograms of real (left) and generated (right) clips, one pair a row, as a PNG."""
    import librosa
    import librosa.display
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(real), 2, figsize=(12, 2.2 * len(real)), squeeze=False)
    for row, (first, second, title) in enumerate(zip(real, generated, titles)):
        for column, (audio, label) in enumerate(((first, "real: " + title), (second, "generated, same prompt/tempo"))):
            mel = librosa.feature.melspectrogram(y=audio, sr=RATE, n_fft=1024, hop_length=256, n_mels=64)
            librosa.display.specshow(librosa.power_to_db(mel, ref=np.max, top_db=80), sr=RATE, hop_length=256,
                                     x_axis="time", y_axis="mel", ax=axes[row, column])
            axes[row, column].set_title(label[:90], fontsize=8)
            axes[row, column].set_xlabel("")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=55)
    plt.close(figure)


def family_confusion(embedder, generated: list[Path], real: list[Path], rows: list[dict]) -> dict:
    """Each generated clip's nearest real-family centroid (cosine in the embedder's space), per prompt family."""
    gen = embed_files(embedder, generated, progress=False).embeddings
    ref = embed_files(embedder, real, progress=False).embeddings
    families = [row["family"] for row in rows]
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
    centroids = unit(np.stack([ref[[f == family for f in families]].mean(axis=0) for family in FAMILIES]))
    matrix = {family: Counter() for family in FAMILIES}
    for vector, family in zip(unit(gen), families):
        matrix[family][FAMILIES[int(np.argmax(centroids @ vector))]] += 1
    real_hits = [FAMILIES[int(np.argmax(centroids @ vector))] == family for vector, family in zip(unit(ref), families)]
    correct = sum(matrix[f][f] for f in FAMILIES) / len(rows)
    return {"families": list(FAMILIES), "matrix": {f: [matrix[f][g] for g in FAMILIES] for f in FAMILIES},
            "own_family_share": correct, "real_own_family_share": float(np.mean(real_hits))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="pipeline folder (or hub id) to measure")
    parser.add_argument("--kind", choices=("loops", "text"), required=True,
                        help="loops: unconditional drum model vs test drums; text: prompted by test captions")
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus"), help="the demo corpus folder")
    parser.add_argument("--num", type=int, default=64, help="generations (text: at least 13 per family)")
    parser.add_argument("--seconds", type=float, default=4.0, help="clip length in seconds (the app's default)")
    parser.add_argument("--seed", type=int, default=0, help="seed of clip choice and generation")
    parser.add_argument("--work-dir", type=Path, default=Path("outputs/bench_quality"),
                        help="where generated and cut real clips are written")
    parser.add_argument("--scheduler", default=None,
                        help="sample with this scheduler (models.schedulers.SCHEDULERS) instead of the model's own")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default: the model's)")
    parser.add_argument("--guidance", type=float, default=None,
                        help="text models: classifier-free guidance scale (default: the Text to audio tab's)")
    parser.add_argument("--guidance-interval", type=float, nargs=2, default=None, metavar=("SIGMA_LO", "SIGMA_HI"),
                        help="guide only steps with noise level sigma in (SIGMA_LO, SIGMA_HI] (sigma = sqrt((1 - "
                             "alpha_bar) / alpha_bar); 'inf' allowed; default: the model's): text models' "
                             "classifier-free guidance, loops models' perturbed-attention guidance")
    parser.add_argument("--pag-scale", type=float, default=None,
                        help="loops models: perturbed-attention guidance scale (0 = off; default: the model's)")
    parser.add_argument("--pag-layers", nargs="+", default=None, metavar="LAYER",
                        help="loops models: self-attention layers perturbed, by name or dotted prefix, e.g. "
                             "mid_block up_blocks.0 (default: the model's, else mid_block)")
    parser.add_argument("--autoguidance", type=float, default=None, metavar="W",
                        help="loops models: autoguidance scale w (1 = off; default: the model's): the prediction is "
                             "weak + w (main - weak) with --guidance-unet (or the model's guidance_unet) as the weak "
                             "model, at the steps in --guidance-interval")
    parser.add_argument("--guidance-unet", type=Path, default=None, metavar="FOLDER",
                        help="loops models: the weak model of autoguidance, a pipeline or training checkpoint folder "
                             "(its unet/) or a UNet folder (default: the model's guidance_unet component)")
    parser.add_argument("--scheduler-option", type=parse_option, action="append", default=[], metavar="KEY=VALUE",
                        help="override one entry of the scheduler's config, e.g. use_karras_sigmas=true or "
                             "final_sigmas_type=sigma_min (repeatable; values read as JSON)")
    parser.add_argument("--gl-iters", type=int, default=None,
                        help="Griffin-Lim iterations of the decoder (default: the model's mel config)")
    parser.add_argument("--max-window-widening", type=float, default=None, metavar="SHARE",
                        help="make a clip at most SHARE longer than one window in one widened window instead of "
                             "two windows (0 = always two; default: the model's, MelPipelineBase."
                             "max_window_widening)")
    parser.add_argument("--bpm-range", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                        help="only real clips with a tempo in (LO, HI] BPM, e.g. 120 135: those whose --seconds "
                             "clip needs a little more than one window of a tempo-normalised model")
    parser.add_argument("--no-floor-stage", action="store_true",
                        help="decode the model's mel as it is, without the checkpoint's floor stage (floor_stage.json)")
    parser.add_argument("--fad", action="store_true", help="with --quick: measure FAD (clap-bundled, mel-stats) too")
    parser.add_argument("--split", choices=("test", "valid"), default="test",
                        help="the split whose clips prompt the generations and are their reference (test: where "
                             "targets are reported; valid: to choose a setting without looking at test); the "
                             "other split gives the floors and calibration (its keys stay 'real_valid' etc.)")
    parser.add_argument("--tag", default="", help="text added to the run's label (work folder names)")
    parser.add_argument("--quick", action="store_true",
                        help="per-clip measures and the two-sample test only: no FAD, memorization, long clips, "
                             "x0 R^2 (for sweeps)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--long-seconds", type=float, default=16.0,
                        help="length of the long clips that check continuation keeps groove and level (0 = skip)")
    parser.add_argument("--long-num", type=int, default=8, help="how many long clips")
    parser.add_argument("--no-memorization", action="store_true", help="skip the memorization report (slow)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--figure", type=Path, default=None,
                        help="write a PNG of real vs generated mel spectrograms here (loops: 4; text: one per family)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    # 1. Real clips and their cuts
    # `test` is the reference split (the one asked for), `valid` the other held-out split (floors, calibration).
    reference, other = args.split, {"test": "valid", "valid": "test"}[args.split]
    test = corpus_rows(args.corpus, reference, args.seconds)
    valid = corpus_rows(args.corpus, other, args.seconds)
    in_range = test if args.bpm_range is None else [row for row in test if row.get("bpm") and
                                                    args.bpm_range[0] < float(row["bpm"]) <= args.bpm_range[1]]
    rows = pick_rows(in_range, args.kind, args.num, args.seed)
    same_kind = (lambda row: row["family"] == "drums") if args.kind == "loops" else (lambda row: True)
    real_dir = args.work_dir / "real"
    real_paths = write_real(rows, args.seconds, real_dir / reference)
    all_test = write_real([row for row in test if same_kind(row)], args.seconds, real_dir / reference)
    all_valid = write_real([row for row in valid if same_kind(row)], args.seconds, real_dir / other)

    # 2. Generate
    name = Path(args.checkpoint).name
    pipeline = load_pipeline(args.checkpoint, device="cpu", scheduler=args.scheduler,
                             floor_stage=not args.no_floor_stage)
    if args.steps:
        pipeline.default_num_inference_steps = args.steps
    if args.scheduler_option:
        pipeline.scheduler = scheduler_with(pipeline.scheduler, dict(args.scheduler_option))
    if args.gl_iters:
        pipeline.mel.register_to_config(n_iter=args.gl_iters)
    if args.max_window_widening is not None:
        if args.max_window_widening < 0:
            parser.exit(2, "bench_quality: --max-window-widening must be at least 0\n")
        pipeline.register_to_config(max_window_widening=args.max_window_widening)
    try:
        if args.guidance_interval:
            pipeline.register_to_config(guidance_interval=list(check_guidance_interval(args.guidance_interval)))
        if args.pag_scale is not None or args.pag_layers:
            if args.kind != "loops":
                raise ValueError("--pag-scale and --pag-layers apply to loops models (--kind loops).")
            if args.pag_scale is not None:
                pipeline.register_to_config(perturbed_attention_scale=args.pag_scale)
            if args.pag_layers:
                pipeline.register_to_config(perturbed_attention_layers=list(args.pag_layers))
            pipeline.perturbed_guidance(None, None, None)  # checks the values against this model
        if args.autoguidance is not None or args.guidance_unet:
            if args.kind != "loops":
                raise ValueError("--autoguidance and --guidance-unet apply to loops models (--kind loops).")
            if args.guidance_unet:
                pipeline.set_guidance_unet(load_guidance_unet(args.guidance_unet))
            if args.autoguidance is not None:
                pipeline.register_to_config(autoguidance_scale=args.autoguidance)
            pipeline.autoguidance(None, None)  # checks the values against this model
    except (ValueError, FileNotFoundError) as error:
        parser.exit(2, f"bench_quality: {error}\n")
    label = f"{name}-{args.kind}-{pipeline.scheduler_name}-{pipeline.default_num_inference_steps}"
    if args.guidance is not None:
        label += f"-g{args.guidance:g}"
    label += "".join(f"-{key}={value}" for key, value in args.scheduler_option)
    label += "-gi{:g}-{:g}".format(*args.guidance_interval) if args.guidance_interval else ""
    label += f"-pag{args.pag_scale:g}" if args.pag_scale is not None else ""
    label += "-" + "+".join(args.pag_layers) if args.pag_layers else ""
    label += f"-ag{args.autoguidance:g}" if args.autoguidance is not None else ""
    label += f"-{args.guidance_unet.name}" if args.guidance_unet else ""
    label += f"-gl{args.gl_iters}" if args.gl_iters else ""
    label += f"-widen{args.max_window_widening:g}" if args.max_window_widening is not None else ""
    label += "-bpm{:g}-{:g}".format(*args.bpm_range) if args.bpm_range else ""
    label += "-floor" if getattr(pipeline, "floor_stage", None) is not None else ""
    label += f"-{args.tag}" if args.tag else ""
    label += "-valid" if args.split == "valid" else ""
    outputs = OutputStore(args.work_dir / f"{label}-workflow", max_files=100_000)
    # The benchmark's own steps and lengths may exceed a public server's limits.
    workspace = Workspace(OneModel(as_generator(pipeline), str(args.checkpoint)), outputs,
                          StudioLimits(max_steps=1000, max_work=10**9), quality_gate=False)
    gate = load_gate(args.checkpoint)
    steps = pipeline.default_num_inference_steps
    unet_items = count_unet_items(pipeline)
    weak_items = count_unet_items(pipeline, "guidance_unet")
    gen_paths, seconds_per_clip, gen_reasons = generate(workspace, str(args.checkpoint), steps, rows, args.kind,
                                                        args.seconds, args.seed, args.work_dir / label, args.guidance)
    gen_audio, real_audio = load_audio(gen_paths), load_audio(real_paths)
    result = {"checkpoint": str(args.checkpoint), "kind": args.kind, "split": args.split, "num": len(rows),
              "seconds": args.seconds,
              "scheduler": pipeline.scheduler_name, "steps": pipeline.default_num_inference_steps,
              "median_cpu_seconds_per_clip": seconds_per_clip, "threads": args.threads,
              "guidance_scale": (args.guidance if args.guidance is not None else TextToAudioRequest.guidance_scale)
              if args.kind == "text" else None,
              "scheduler_options": dict(args.scheduler_option), "gl_iters": int(pipeline.mel.config.n_iter),
              "guidance_interval": pipeline.config.get("guidance_interval"),
              "perturbed_attention": {"scale": pipeline.config.get("perturbed_attention_scale"),
                                      "layers": pipeline.config.get("perturbed_attention_layers")}
              if args.kind == "loops" else None,
              "autoguidance": {"scale": pipeline.config.get("autoguidance_scale"),
                               "guidance_unet": str(args.guidance_unet) if args.guidance_unet else None,
                               "guidance_unet_evaluations_per_clip": weak_items[0] / len(rows)}
              if args.kind == "loops" else None,
              "unet_evaluations_per_clip": unet_items[0] / len(rows),
              "max_window_widening": pipeline.window_widening,
              "bpm_range": args.bpm_range,
              "floor_stage": getattr(pipeline, "floor_stage", None) is not None}

    if args.figure:
        shown = [0, 1, 2, 3] if args.kind == "loops" else [next(i for i, row in enumerate(rows) if row["family"] == f)
                                                           for f in FAMILIES]
        spectrogram_figure([real_audio[i] for i in shown], [gen_audio[i] for i in shown],
                           [rows[i]["text"] for i in shown], args.figure)

    # 3. Broken clips, pulse clarity, two-sample test
    def broken_share(audios, kinds):
        reasons = [gate.reasons(audio, RATE, kind) for audio, kind in zip(audios, kinds)]
        return float(np.mean([bool(r) for r in reasons])), Counter(x for r in reasons for x in r)

    # Each take judged as the workflows judge it: by the kind its prompt names (loops: no prompt, "any").
    gen_kinds = [kind_of_prompt(row["text"], gate.thresholds) if args.kind == "text" else None for row in rows]
    # Flagged as the workflow's gate judged each take: as the model made it, before the stretch to the real clip's
    # tempo (Rubber Band lowers a wash's flatness); the served (stretched) files judged again for comparison.
    gen_broken = float(np.mean([bool(reasons) for reasons in gen_reasons]))
    gen_why = Counter(reason for reasons in gen_reasons for reason in reasons)
    after_stretch, _ = broken_share(gen_audio, gen_kinds)
    test_broken, _ = broken_share(load_audio(all_test), [kind_of_row(row) for row in test if same_kind(row)])
    valid_broken, _ = broken_share(load_audio(all_valid), [kind_of_row(row) for row in valid if same_kind(row)])
    result["broken"] = {"generated": gen_broken, "reasons": dict(gen_why), "generated_after_stretch": after_stretch,
                        "real_test": test_broken, "real_valid": valid_broken}
    test_rows = [row for row in test if same_kind(row)]
    result["washes"] = wash_share(gen_audio, rows, load_audio(all_test), test_rows, args.kind)
    result["floor_between_hits"] = floor_report(gen_audio, real_audio, rows)
    gen_pulse = np.median([pulse_clarity(audio, RATE) for audio in gen_audio])
    real_pulse = np.median([pulse_clarity(audio, RATE) for audio in real_audio])
    result["pulse_clarity"] = {"generated": float(gen_pulse), "real": float(real_pulse),
                               "ratio": float(gen_pulse / real_pulse)}
    accuracy, spread = c2st_accuracy(np.stack([c2st_features(a, RATE) for a in real_audio]),
                                     np.stack([c2st_features(a, RATE) for a in gen_audio]), seed=args.seed)
    result["c2st"] = {"accuracy": accuracy, "std": spread}

    # The representation's own ceiling: the same real clips through mel + Griffin-Lim (+ stretching)
    vocoded_dir = args.work_dir / f"{label}-vocoded-real"
    vocoded_dir.mkdir(parents=True, exist_ok=True)
    vocoded_paths = []
    for path, audio, row in zip(real_paths, real_audio, rows):
        vocoded_paths.append(vocoded_dir / path.name)
        bpm = float(row["bpm"]) if getattr(pipeline, "reference_bpm", None) and row.get("bpm") else None
        sf.write(vocoded_paths[-1], vocode(pipeline, audio, bpm), RATE)
    vocoded_audio = load_audio(vocoded_paths)
    vocoded_broken, _ = broken_share(vocoded_audio, [kind_of_row(row) for row in rows])
    accuracy, spread = c2st_accuracy(np.stack([c2st_features(a, RATE) for a in real_audio]),
                                     np.stack([c2st_features(a, RATE) for a in vocoded_audio]), seed=args.seed)
    result["vocoded_real"] = {"c2st_accuracy": accuracy, "broken": vocoded_broken, "pulse_clarity_ratio": float(
        np.median([pulse_clarity(a, RATE) for a in vocoded_audio]) / real_pulse),
        "floor_between_hits_gap_db": floor_report(vocoded_audio, real_audio, rows)["gap_db"]}

    # 4. FAD against test clips, and the real floor at the same sizes
    rng = np.random.default_rng(args.seed)
    result["fad"] = {}
    for embedder_name in () if args.quick and not args.fad else ("clap-bundled", "mel-stats"):
        embedder = get_embedder(embedder_name)
        test_set = embed_files(embedder, all_test, progress=False).embeddings
        valid_set = embed_files(embedder, all_valid, progress=False).embeddings
        gen_set = embed_files(embedder, gen_paths, progress=False).embeddings
        floor_rows = rng.permutation(len(valid_set))[: len(gen_set)]
        generated_fad, floor = fad(test_set, gen_set), fad(test_set, valid_set[floor_rows])
        vocoded_fad = fad(test_set, embed_files(embedder, vocoded_paths, progress=False).embeddings)
        result["fad"][embedder_name] = {"generated": generated_fad, "floor": floor, "ratio": generated_fad / floor,
                                        "vocoded_real": vocoded_fad, "vocoded_ratio": vocoded_fad / floor}

    # 5. Text: CLAP score against the real clips' own, and the family confusion matrix
    if args.kind == "text":
        from evaluation.clap_score import clap_score

        embedder = get_embedder("clap-bundled")
        captions_gen = {path.name: row["text"] for path, row in zip(gen_paths, rows)}
        captions_real = {path.name: row["text"] for path, row in zip(real_paths, rows)}
        generated = clap_score(embedder, embed_files(embedder, gen_paths, progress=False), captions_gen,
                               n_bootstrap=200)
        real_score = clap_score(embedder, embed_files(embedder, real_paths, progress=False), captions_real,
                                n_bootstrap=200).mean
        gen_score = generated.mean
        # The 95% bootstrap interval over clips, and each clip's cosine in clip order (for paired comparisons
        # of settings run on the same seeds and prompts).
        cosines = {row["file"]: row["cosine"] for row in generated.per_clip}
        result["clap_score"] = {"generated": gen_score, "real": real_score, "ratio": gen_score / real_score,
                                "generated_ci": [generated.ci_low, generated.ci_high],
                                "generated_per_clip": [cosines.get(path.name) for path in gen_paths]}
        result["families"] = family_confusion(embedder, gen_paths, real_paths, rows)

    # 6. Memorization against the training clips
    if not (args.no_memorization or args.quick):
        from evaluation.memorization import memorization_report

        train = [row for row in corpus_rows(args.corpus, "train", 0.0) if same_kind(row)]
        embedder = get_embedder("clap-bundled")
        report = memorization_report(
            embed_files(embedder, gen_paths, progress=False),
            embed_files(embedder, [Path(row["path"]) for row in train], progress=False),
            baseline=embed_files(embedder, all_valid, progress=False), progress=False)
        result["memorization"] = {"flagged": report.share_above["copies"],
                                  "baseline_flagged": report.share_above["baseline_copies"],
                                  "thresholds": report.thresholds}

    # 7. Long clips: continued window by window, do they keep the level and the groove?
    if args.long_seconds and not args.quick:
        long_rows = rows[: args.long_num]
        workspace.limits.max_seconds = max(workspace.limits.max_seconds, args.long_seconds)
        long_paths, _, _ = generate(workspace, str(args.checkpoint), steps, long_rows, args.kind, args.long_seconds,
                                 args.seed + 1000, args.work_dir / f"{label}-long")
        drifts, broken, clarity = [], [], []
        for audio in load_audio(long_paths):
            rms = [float(np.sqrt(np.mean(piece ** 2)) + 1e-9) for piece in (audio[: 2 * RATE], audio[-2 * RATE:])]
            drifts.append(20 * np.log10(rms[1] / rms[0]))
            broken.append(bool(gate.reasons(audio, RATE, gen_kinds[len(broken)])))
            clarity.append(pulse_clarity(audio, RATE))
        result["long_clips"] = {"seconds": args.long_seconds, "num": len(long_rows),
                                "level_drift_db_last_vs_first_2s": {"median": float(np.median(drifts)),
                                                                    "min": float(np.min(drifts))},
                                "broken": float(np.mean(broken)), "pulse_clarity_median": float(np.median(clarity))}

    # 8. The implied x0 on real windows, per timestep
    if not args.quick:
        result["x0_r2"] = x0_r2(pipeline, rows, args.kind, [0, 100, 200, 400, 600, 800, 900, 999])

    print(json.dumps(result, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
