"""Calibrate a checkpoint's floor stage (`models.floor_stage`) against real clips of the kinds it was trained on,
and save it beside the checkpoint as `floor_stage.json`, which the pipeline then applies before decoding:

    python -m training.floor_stage checkpoints/loops --steps 10
    python -m training.floor_stage runs/loops/checkpoint-0005000 --corpus data/corpus --num-generated 64

How: real clips of the checkpoint's kinds (the valid split, as `training.quality_gate` finds them, at their own
tempo, first `--seconds`) and windows the checkpoint generates itself (its default sampler, `--steps`, fixed
seeds). Each band's threshold sits at the real clips' loud level of that band (`LOUD_PERCENTILE`th percentile
over a clip's frames, median over clips, dB relative to the clip's loudest bin) plus one offset for all bands;
the offset is the one at which the generated windows' floor between hits, through the stage, comes down to the
real clips' (`music.take_quality.floor_between_hits`, median over clips; bisection). The generated windows are
heard as the app makes them: each at a real clip's tempo (for a tempo-normalised model its mel stretched in
time, `at_tempi`) and decoded by the pipeline's own decoder. Both sets are needed: the real clips say where the
floor should be, the generated ones where the model puts it. The report gives the floors of the real clips, of
the generated windows before and after, and of the real clips' mels through the stage (the stage is meant for
generated mels: on real ones it deepens a floor that is already where it should be).

Unconditional mel checkpoints (`MelDiffusionPipeline`) only: a text model makes many kinds of clip whose
floors differ (a chorale sustains where drums fall silent), which one set of thresholds cannot serve.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from models.floor_stage import FLOOR_FILE, FloorStage
from models.loading import load_pipeline
from models.pipeline_base import WindowCall
from music.audio import prepare_audio
from music.audiofolder import METADATA_JSONL, read_rows
from music.take_quality import floor_between_hits
from training.quality_gate import add_calibration_arguments, real_clips, run_calibration

# A band's loud level in a clip: this percentile of its level over the clip's frames.
LOUD_PERCENTILE = 90.0
DEFAULT_SECONDS = 4.0
DEFAULT_GENERATED = 32
DEFAULT_REAL = 128
# Offsets searched (dB, added to every band's loud level) and the bisection's steps (0.14 dB at the end). Above
# the top, thresholds reach the loudest bands' hits, and cutting hits raises the floor relative to them again.
OFFSET_RANGE_DB = (-60.0, 10.0)
BISECTION_STEPS = 9


def mel_level_db(mel_power: torch.Tensor, db_per_decade: float, top_db: float) -> torch.Tensor:
    """`[bands, frames]` level of one clip's mel power `[1, bands, frames]`: dB relative to its loudest bin, at
    most `top_db` down (the mel images' range)."""
    power = mel_power[0].double().clamp_min(1e-20)
    return (db_per_decade * torch.log10(power / power.max())).clamp_min(-top_db)


def at_tempi(mel_power: torch.Tensor, factors: Sequence[float], max_frames: int) -> list[torch.Tensor]:
    """Each clip of mel power `[clips, 1, bands, frames]` played `factors[i]` times as long (linear interpolation
    of its level in dB along time, standing in for Rubber Band), at most `max_frames` frames: generated windows
    at the reference tempo heard at the tempi of real clips, as the app and the quality benchmark hear them."""
    out = []
    for clip, factor in zip(mel_power, factors):
        frames = max(2, min(max_frames, round(clip.shape[-1] * factor)))
        level = torch.log10(clip.double().clamp_min(1e-20))
        stretched = torch.nn.functional.interpolate(level, size=round(clip.shape[-1] * factor), mode="linear",
                                                    align_corners=True)[..., :frames]
        out.append(torch.pow(10.0, stretched).float())
    return out


def band_loud_levels(clips: Sequence[torch.Tensor], db_per_decade: float, top_db: float) -> torch.Tensor:
    """`[bands]`: each band's `LOUD_PERCENTILE`th-percentile level over a clip's frames (mel power `[1, bands,
    frames]`), median over clips."""
    loud = [torch.quantile(mel_level_db(clip, db_per_decade, top_db), LOUD_PERCENTILE / 100, dim=-1) for clip in clips]
    return torch.stack(loud).median(dim=0).values.float()


def fit_offset(generated: torch.Tensor, target_floor_db: float, loud_levels: torch.Tensor, template: FloorStage,
               floor_of: Callable[[torch.Tensor], float], db_per_decade: float = 10.0) -> float:
    """The offset (dB, added to `loud_levels` for the thresholds) at which `floor_of` the `generated` mel power
    `[clips, 1, bands, frames]` through the stage (its floor between hits, dB) comes down to `target_floor_db`: a
    higher threshold cuts more, so the floor falls; bisection over `OFFSET_RANGE_DB` (its low end when the
    generated floor is already low enough)."""
    def floor_at(offset: float) -> float:
        return floor_of(replace(template, thresholds_db=(loud_levels + offset).tolist())(generated, db_per_decade))

    low, high = OFFSET_RANGE_DB
    if floor_at(low) <= target_floor_db:
        return low
    for _ in range(BISECTION_STEPS):
        middle = (low + high) / 2
        low, high = (middle, high) if floor_at(middle) > target_floor_db else (low, middle)
    return high


def real_mels(pipeline, clips: list[tuple[Path, str]], seconds: float, progress: bool = True
              ) -> tuple[torch.Tensor, list[float | None], list[np.ndarray]]:
    """Mel power `[clips, 1, bands, frames]` of the first `seconds` of each real clip at the model's rate, each
    clip's tempo from its metadata row (None where it has none), and the audio itself; clips shorter than
    `seconds` are left out."""
    tempi = _tempi_of(clips)
    num_samples = round(seconds * pipeline.sample_rate)
    mels, bpms, audios = [], [], []
    for path, _ in tqdm(clips, desc="real clips", unit="clip", disable=not progress):
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
        audio = prepare_audio(audio.T, rate, pipeline.sample_rate, 3600.0)
        if len(audio) >= num_samples:
            mels.append(pipeline.mel.audio_to_mel_power(torch.from_numpy(audio[:num_samples])[None])[0])
            bpms.append(tempi.get(Path(path).resolve()))
            audios.append(audio[:num_samples])
    if not mels:
        raise ValueError(f"No real clip is at least {seconds:g} s long.")
    return torch.stack(mels)[:, None], bpms, audios


def _tempi_of(clips: list[tuple[Path, str]]) -> dict[Path, float]:
    """{clip path: its "bpm"} from the `metadata.jsonl` of each clip's split folder (the first two levels up)."""
    tempi: dict[Path, float] = {}
    folders = {parent for path, _ in clips for parent in Path(path).parents[:2]}
    for folder in folders:
        if (folder / METADATA_JSONL).is_file():
            for row in read_rows(folder / METADATA_JSONL):
                if row.get("bpm"):
                    tempi[(folder / row["file_name"]).resolve()] = float(row["bpm"])
    return tempi


@torch.no_grad()
def generated_mels(pipeline, count: int, steps: int | None = None, seed: int = 0, batch: int = 8,
                   progress: bool = True) -> torch.Tensor:
    """Mel power `[count, 1, bands, frames]` of `count` windows the pipeline generates from scratch (seeds `seed`,
    `seed + 1`, ...; its default steps unless `steps`), before any floor stage."""
    steps = steps or pipeline.default_num_inference_steps
    mels = []
    for start in tqdm(range(0, count, batch), desc="generating", unit="batch", disable=not progress):
        size = min(batch, count - start)
        call = WindowCall(size, steps, [torch.Generator().manual_seed(seed + start + k) for k in range(size)])
        images = pipeline.sample_windows(call, None, 1.0, None, torch.zeros(size, dtype=torch.long))
        mels.append(pipeline.windows_to_frames(images).float().cpu())
    return torch.cat(mels)


def decode(pipeline, clips: Sequence[torch.Tensor]) -> list[np.ndarray]:
    """Each clip's mel power `[1, bands, frames]` through the pipeline's decoder (vocoder or Griffin-Lim)."""
    hop = pipeline.mel.config.hop_length
    return [pipeline.frames_to_audio(clip[None], clip.shape[-1] * hop)[0, 0] for clip in clips]


def median_floor(audios: Sequence[np.ndarray], sample_rate: int) -> float:
    """Median over clips of `floor_between_hits` (dB below the loud level); NaN when no clip has two onsets."""
    floors = [floor_between_hits(audio, sample_rate) for audio in audios]
    return float(np.nanmedian(floors)) if not np.all(np.isnan(floors)) else float("nan")


def calibrate_floor_stage(checkpoint: str | Path, corpus: str | Path | None = None, seconds: float = DEFAULT_SECONDS,
                          num_generated: int = DEFAULT_GENERATED, num_real: int = DEFAULT_REAL,
                          steps: int | None = None, seed: int = 0, template: FloorStage | None = None,
                          progress: bool = True, save: bool = True) -> FloorStage:
    """The floor stage of `checkpoint` calibrated as the module docstring says (on at most `num_real` real valid
    clips, evenly spaced through the split); saved as `floor_stage.json` in its folder when `save`.

    Raises:
        ValueError: not an unconditional mel checkpoint, or fewer than 20 real clips.
    """
    pipeline = load_pipeline(checkpoint, device="cpu", floor_stage=False)
    if getattr(pipeline, "is_text_conditioned", True) or not hasattr(pipeline, "mel"):
        raise ValueError(f"{checkpoint}: a floor stage is calibrated for unconditional mel checkpoints only "
                         f"(got {type(pipeline).__name__}).")
    clips = real_clips(checkpoint, corpus)["valid"]
    if len(clips) > num_real:
        clips = [clips[index] for index in np.linspace(0, len(clips) - 1, num_real).round().astype(int)]
    real, tempi, real_audio = real_mels(pipeline, clips, seconds, progress)
    if len(real) < 20:
        raise ValueError(f"{checkpoint}: {len(real)} real valid clips of {seconds:g} s; a floor stage needs 20.")
    generated = generated_mels(pipeline, num_generated, steps, seed, progress=progress)
    db_per_decade, top_db = pipeline.mel.db_per_decade, float(pipeline.mel.config.top_db)
    # The i-th generated window at the i-th real clip's tempo (cycling); as it is without a reference tempo.
    reference = getattr(pipeline, "reference_bpm", None)
    factors = [reference / tempi[index % len(tempi)] if reference and tempi[index % len(tempi)] else 1.0
               for index in range(len(generated))]

    def floor_of(mels: torch.Tensor) -> float:
        return median_floor(decode(pipeline, at_tempi(mels, factors, real.shape[-1])), pipeline.sample_rate)

    real_floor = median_floor(real_audio, pipeline.sample_rate)
    loud = band_loud_levels(list(real), db_per_decade, top_db)
    template = template or FloorStage(thresholds_db=[0.0])
    offset = fit_offset(generated, real_floor, loud, template, floor_of, db_per_decade)
    stage = replace(template, thresholds_db=(loud + offset).tolist())
    floors = {"real": real_floor, "generated_before": floor_of(generated),
              "generated_after": floor_of(stage(generated, db_per_decade)),
              "real_through_stage": median_floor(decode(pipeline, list(stage(real, db_per_decade))),
                                                 pipeline.sample_rate),
              "real_through_decoder": median_floor(decode(pipeline, list(real)), pipeline.sample_rate)}
    stage.report = {
        "real_clips": len(real), "generated_windows": len(generated), "seconds": seconds, "seed": seed,
        "steps": steps or pipeline.default_num_inference_steps,
        "source": "real valid clips of the checkpoint's kinds (at their own tempo) against windows it generates "
                  "itself (heard at the real clips' tempi)",
        "loud_percentile": LOUD_PERCENTILE, "offset_db": round(offset, 3),
        "floor_between_hits_db": {**{key: round(value, 2) for key, value in floors.items()},
                                  "measured_by": "music.take_quality.floor_between_hits, median over clips, dB below "
                                                 "the loud level"},
    }
    if save:
        stage.save(checkpoint)
    return stage


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_calibration_arguments(parser, FLOOR_FILE)
    parser.add_argument("--num-generated", type=int, default=DEFAULT_GENERATED,
                        help="windows the checkpoint generates to find its own floor (8 to 1024)")
    parser.add_argument("--num-real", type=int, default=DEFAULT_REAL,
                        help="most real valid clips measured, evenly spaced through the split (20 to 10000)")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps of those windows (default: the "
                                                                "checkpoint's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first generated window (then +1 each)")
    parser.add_argument("--ratio", type=float, default=FloorStage.ratio,
                        help="expansion ratio below a band threshold, 1 to 100 (dB of cut per dB under it: ratio - 1)")
    parser.add_argument("--max-cut-db", type=float, default=FloorStage.max_cut_db,
                        help="the most the stage cuts any bin, dB (0 to 120)")
    args = parser.parse_args(argv)

    def calibrate() -> FloorStage:
        if not 8 <= args.num_generated <= 1024 or not 20 <= args.num_real <= 10000:
            raise ValueError(f"--num-generated must be in [8, 1024] and --num-real in [20, 10000], got "
                             f"{args.num_generated} and {args.num_real}.")
        template = FloorStage(thresholds_db=[0.0], ratio=args.ratio, max_cut_db=args.max_cut_db)
        return calibrate_floor_stage(args.checkpoint, args.corpus, args.seconds, args.num_generated, args.num_real,
                                     args.steps, args.seed, template, save=not args.dry_run)

    return run_calibration(args, calibrate, FLOOR_FILE)


if __name__ == "__main__":
    raise SystemExit(main())
