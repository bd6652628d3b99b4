"""Trainer for tempo-normalised models from a data pack (`training/pack.py`): the bundled checkpoints' recipe.

Every window is two bars at the pack's reference tempo, starting on a downbeat, so a small model
learns a drum grid instead of a blur of tempos. The data lives on the training device and a batch
is cut by index arithmetic, so a GPU step is a handful of kernels, not a Python loop over files.

Runs through the same loop as `training.train` (`training/engine.py`): accelerate mixed
precision, EMA weights, `--max-minutes` / `--max-steps` budgets, checkpoints that `--resume` continues.
A checkpoint folder is a float16 pipeline (what ships) plus `training_state/` (fp32 weights,
optimizer, EMA) for `--resume`; `--init-from` continues from a pipeline folder alone (a checkpoint
returned from a GPU machine without its training state) with a fresh optimizer.
"""
from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from diffusers.training_utils import EMAModel

from models.key_embedding import NO_KEY, KeyEmbedding
from models.mel import Mel
from models.pipeline_mel_diffusion import MelDiffusionPipeline
from models.pipeline_text_to_mel import TextToMelPipeline
from models.schedulers import make_scheduler
from training.batches import seeded_generator
from training.diffusion import TextTimingDenoiser, UnconditionalDenoiser
from training.engine import DenoiserTrainer, ema_weights, saved_arguments
from training.pack import Pack, PackWindows, bar_windows, load_pack
from training.presets import (
    PRESETS,
    build_conditional_unet,
    build_projection,
    build_unet,
    build_vocoder,
    count_parameters,
)
from training.recipe import diffusion_loss, noise_schedule

logger = logging.getLogger(__name__)

# Mel settings a pack and a preset must share (the window width comes from the preset), with the defaults of
# those that older packs do not record.
MEL_KEYS = ("y_res", "sample_rate", "n_fft", "hop_length", "top_db", "f_min", "f_max", "power")
MEL_DEFAULTS = {"f_min": 0.0, "f_max": None, "power": 2.0}


class PackError(ValueError):
    """A pack that does not fit the asked model (wrong mel settings, no clips of a subset, no captions)."""


def check_pack(pack: Pack, mel: dict, text: bool, subsets: tuple[str, ...] | None) -> None:
    """Raise `PackError` when `pack` cannot train this model."""
    for key in MEL_KEYS:
        packed, needed = pack.info["mel"].get(key, MEL_DEFAULTS.get(key)), mel.get(key, MEL_DEFAULTS.get(key))
        if packed != needed:
            raise PackError(f"The pack's mel {key} is {packed} but the preset needs {needed}: "
                            "rebuild the pack with matching settings (--vocoder) or pick another preset.")
    if text and not pack.text_embeddings.size:
        raise PackError("A text model needs caption embeddings: rebuild the pack with a --text-encoder.")
    if subsets and not np.isin(pack.subset, subsets).any():
        raise PackError(f"The pack has no clip of subset(s) {', '.join(subsets)}; it has "
                        f"{', '.join(sorted(set(pack.subset.tolist())))}.")


def write_pack_splits(folder: Path, pack: Pack, train_indices: list[int]) -> None:
    """`train_files.txt` (corpus-relative names) and `splits.json` (names with SHA-256) of the clips trained on,
    for memorization checks against exactly those files (once each: key-shifted copies share their file)."""
    first = {}
    for index in train_indices:
        first.setdefault(str(pack.file_name[index]), index)
    train_indices = list(first.values())
    names = [str(pack.file_name[i]) for i in train_indices]
    (folder / "train_files.txt").write_text("\n".join(names) + "\n")
    splits = {"method": "data pack", "corpus": pack.info.get("corpus"), "reference_bpm": pack.info["reference_bpm"],
              "train": [{"file": str(pack.file_name[i]), "sha256": str(pack.sha256[i])} for i in train_indices]}
    (folder / "splits.json").write_text(json.dumps(splits, indent=1))


class LearningRate:
    """Linear warm-up, then cosine decay to 10% over the run's budget: `max_steps` or the time budget,
    whichever is nearer (so a time-limited GPU run ends on a low learning rate)."""

    def __init__(self, peak: float, warmup_steps: int, max_steps: int, max_seconds: float | None, start_step: int):
        self.peak, self.warmup, self.max_steps, self.max_seconds = peak, warmup_steps, max_steps, max_seconds
        self.start_step = start_step
        self.started = time.monotonic()

    def __call__(self, step: int) -> float:
        if step < self.start_step + self.warmup:
            return self.peak * (step - self.start_step + 1) / self.warmup
        progress = step / self.max_steps
        if self.max_seconds:
            progress = max(progress, (time.monotonic() - self.started) / self.max_seconds)
        return self.peak * (0.1 + 0.45 * (1.0 + math.cos(math.pi * min(1.0, progress))))


class PackTrainer(DenoiserTrainer):
    """Trains `MelDiffusionPipeline` (`args.model == "unconditional"`) or `TextToMelPipeline` (`"text"`) from a pack.

    Args:
        args: the parsed `python -m training.train_pack` arguments.
        accelerator: from `engine.make_accelerator`.
        resume_from: a checkpoint or pipeline folder whose weights to start from.
        start_step: the step the run continues at.
    """

    def __init__(self, args: argparse.Namespace, accelerator: Accelerator, resume_from: Path | None = None,
                 start_step: int = 0):
        self.args = args
        self.accelerator = accelerator
        self.text = args.model == "text"
        device = accelerator.device
        preset = PRESETS[args.preset]

        # 1. The pack and its bar-aligned windows (train on the device, valid for the valid loss)
        pack = load_pack(args.pack)
        subsets = tuple(args.subsets) if args.subsets else None
        check_pack(pack, preset.mel, self.text, subsets)
        self.pack = pack
        window = preset.mel["x_res"]
        train = bar_windows(pack, pack.select(("train",), subsets), window, whole=not self.text)
        valid = bar_windows(pack, pack.select(("valid",), subsets), window, whole=not self.text)
        if not len(train):
            raise PackError(f"No window of {window} frames in the pack's train clips: the clips are shorter than "
                            f"{window // pack.frames_per_bar} bars at the reference tempo.")
        self.train_data = PackWindows(pack, train, window, device)
        self.latest_start_s = float(train.start.max()) * self.train_data.seconds_per_frame
        self.valid_data = PackWindows(pack, valid, window, device) if len(valid) else None
        self.train_clips = sorted(set(pack.file_name[train.clip].tolist()))
        self.train_indices = sorted(set(train.clip.tolist()))
        self.empty_text = torch.from_numpy(pack.empty_text_embedding.astype(np.float32)).to(device)
        logger.info("Pack %s: %d train windows from %d clips, %d valid windows; reference tempo %.4f BPM.",
                    args.pack, len(train), len(self.train_clips), len(valid), pack.info["reference_bpm"])

        # 2. Models: new, or the weights of a checkpoint / pipeline folder
        if resume_from is not None:
            pipeline_class = TextToMelPipeline if self.text else MelDiffusionPipeline
            kwargs = {"text_encoder": None, "tokenizer": None} if self.text else {}
            pipeline = pipeline_class.from_pretrained(resume_from, torch_dtype=torch.float32, **kwargs)
        else:
            pipeline = self._new_pipeline(pack, preset)
        self.keys = self.text and self._add_key_embedding(pipeline, fine_tune=resume_from is not None)
        self.pipeline = pipeline.to(device)
        self.noise_scheduler = noise_schedule(args.prediction_type, args.beta_schedule, args.zero_terminal_snr)
        self.noise_scheduler.alphas_cumprod = self.noise_scheduler.alphas_cumprod.to(device)
        self.denoiser = TextTimingDenoiser(pipeline) if self.text else UnconditionalDenoiser(pipeline.unet)
        self.denoiser.to(memory_format=torch.channels_last)
        self.parameters = count_parameters(self.denoiser)
        trained = self._trained_parameters()
        logger.info("Training %s: %.2f M parameters (%d trained).", type(pipeline.unet).__name__,
                    self.parameters / 1e6, sum(parameter.numel() for parameter in trained))
        self.timing_norm = self._timing_vector_norm() if self.keys else None

        # 3. Optimizer, learning rate, EMA; accelerate; optional torch.compile of the UNet
        fused = device.type == "cuda"
        self.optimizer = torch.optim.AdamW(trained, lr=args.learning_rate, weight_decay=args.weight_decay, fused=fused)
        max_seconds = args.max_minutes * 60 if args.max_minutes else None
        # A run resumed with its optimizer state does not warm up again; a fresh optimizer does.
        warm_from = 0 if args.resume else start_step
        self.learning_rate = LearningRate(args.learning_rate, args.warmup_steps, args.max_steps, max_seconds,
                                          warm_from)
        self.denoiser, self.optimizer = accelerator.prepare(self.denoiser, self.optimizer)
        self.ema = EMAModel(self.unwrapped.parameters(), decay=args.ema_decay, use_ema_warmup=True,
                            power=args.ema_power, foreach=True)
        self.ema.to(device)
        self.ema.optimization_step = start_step
        accelerator.register_for_checkpointing(self.ema)
        self.forward = self.denoiser
        if args.compile:
            self.forward = torch.compile(self.denoiser)

    # ---- building ----------------------------------------------------------------------------

    def _new_pipeline(self, pack: Pack, preset) -> MelDiffusionPipeline | TextToMelPipeline:
        args = self.args
        mel = Mel(**preset.mel)
        noise_scheduler = noise_schedule(args.prediction_type, args.beta_schedule, args.zero_terminal_snr)
        scheduler = make_scheduler("dpm++", noise_scheduler.config, bounded=True)
        tempo = {"reference_bpm": float(pack.info["reference_bpm"]), "beats_per_bar": int(pack.info["beats_per_bar"])}
        torch.manual_seed(args.seed)
        if not self.text:
            unet = build_unet(preset, dict(mel.config))
            if args.dropout:
                unet = type(unet).from_config(unet.config, dropout=args.dropout)
            return MelDiffusionPipeline(unet=unet, scheduler=scheduler, mel=mel, vocoder=self.vocoder(preset),
                                        **tempo)
        longest = float(pack.seconds[pack.select(("train",))].max())
        max_seconds = args.max_seconds or max(math.ceil(longest), math.ceil(mel.seconds_per_image))
        projection = build_projection(preset, pack.text_embeddings.shape[1], max_seconds)
        unet = build_conditional_unet(preset, dict(mel.config))
        if args.dropout:
            unet = type(unet).from_config(unet.config, dropout=args.dropout)
        return TextToMelPipeline(
            unet=unet, scheduler=scheduler, mel=mel, projection_model=projection,
            text_encoder_name_or_path=pack.info["text_encoder"], text_pooling=pack.info["text_pooling"],
            max_window_start_s=self.latest_start_s, vocoder=self.vocoder(preset), **tempo,
        )

    def _add_key_embedding(self, pipeline: TextToMelPipeline, fine_tune: bool) -> bool:
        """Whether the text model trains a key embedding (`--key-conditioning`; auto: when the pack has key
        labels); give the pipeline one when it has none (a fine-tune of a checkpoint trained without one adds
        its token to the caption's, so that it starts exactly from the checkpoint, see `models/key_embedding.py`).

        Raises:
            PackError: `--key-conditioning on` with a pack without key labels.
        """
        labelled = bool((self.pack.key != NO_KEY).any())
        choice = getattr(self.args, "key_conditioning", "auto")
        if choice == "on" and not labelled:
            raise PackError("--key-conditioning on needs key labels in the pack: rebuild it with "
                            "`python -m scripts.build_pack` (it records each clip's key).")
        wanted = pipeline.key_embedding is not None if choice == "auto" and not labelled else choice != "off"
        if wanted and pipeline.key_embedding is None:
            width = pipeline.projection_model.config.conditioning_dim
            vector = pipeline.unet.config.projection_class_embeddings_input_dim or 2 * width
            torch.manual_seed(self.args.seed)
            pipeline.register_modules(key_embedding=KeyEmbedding(
                conditioning_dim=width, vector_dim=vector, token_mode="add_to_text" if fine_tune else "append",
                none_adds_nothing=self.train_only == "key_embedding"))
            logger.info("Added a key embedding (token %s, 'none' adds nothing: %s).",
                        pipeline.key_embedding.config.token_mode, pipeline.key_embedding.config.none_adds_nothing)
        elif not wanted and pipeline.key_embedding is not None:
            raise PackError("This model has a key embedding; --key-conditioning off cannot drop it.")
        return wanted

    @property
    def train_only(self) -> str | None:
        """`--train-only`: the one denoiser component trained (None: all of them)."""
        return getattr(self.args, "train_only", None)

    def _trained_parameters(self) -> list[torch.nn.Parameter]:
        """The parameters the optimizer updates: all, or with `--train-only NAME` those of that component, every
        other weight frozen (no gradient kept: a step skips their weight gradients and optimizer update).

        Raises:
            PackError: the model has no such component (a key embedding needs a text model and key labels).
        """
        name = self.train_only
        if name is None:
            return list(self.denoiser.parameters())
        component = getattr(self.denoiser, name, None)
        if not isinstance(component, torch.nn.Module):
            raise PackError(f"--train-only {name}: this model has no {name} (key_embedding needs --model text and "
                            "a pack with key labels, or --key-conditioning on).")
        self.denoiser.requires_grad_(False)
        component.requires_grad_(True)
        return list(component.parameters())

    def _timing_vector_norm(self, windows: int = 256) -> float:
        """Mean L2 norm of the timing vector (the class-embedding input the key vector is added to) over the
        first `windows` train windows: the scale a key vector must reach to matter."""
        items = torch.arange(min(windows, len(self.train_data)), device=self.accelerator.device)
        with torch.no_grad():
            _, vector = self.pipeline.encode_duration(*self.train_data.timing(items))
        return float(vector.float().norm(dim=-1).mean())

    def vocoder(self, preset):
        """The vocoder saved with a new pipeline: `--vocoder`, else the preset's (None: Griffin-Lim)."""
        return build_vocoder(preset, getattr(self.args, "vocoder", None))

    # ---- one step ------------------------------------------------------------------------------

    def batch(self, data: PackWindows, items: torch.Tensor, generator: torch.Generator | None,
              caption_dropout: float) -> tuple[torch.Tensor, dict]:
        """Images (with uniform dequantisation noise within one 8-bit step when training) and conditioning."""
        images = data.images(items)
        if generator is not None:
            step = 2.0 / 127
            jitter = (torch.rand(images.shape, generator=generator, device=images.device) - 0.5) * step
            images = (images + jitter).clamp(-1.0, 1.0)
        if generator is not None and self.args.bar_roll > 0:
            rolled = torch.rand(len(items), generator=generator, device=images.device) < self.args.bar_roll
            images = torch.where(rolled[:, None, None, None], images.roll(self.pack.frames_per_bar, dims=-1), images)
        images = images.contiguous(memory_format=torch.channels_last)
        if not self.text:
            return images, {}
        text = data.text[items]
        keys = data.key[items]
        if caption_dropout > 0 and generator is not None:
            dropped = torch.rand(len(items), generator=generator, device=text.device) < caption_dropout
            text = torch.where(dropped[:, None], self.empty_text[None], text)
            keys = torch.where(dropped, torch.full_like(keys, NO_KEY), keys)  # the unconditional branch: no key
        if getattr(self.args, "key_dropout", 0.0) > 0 and generator is not None:
            # the caption alone, as a prompt that names no key is at inference
            dropped = torch.rand(len(items), generator=generator, device=text.device) < self.args.key_dropout
            keys = torch.where(dropped, torch.full_like(keys, NO_KEY), keys)
        seconds_start, seconds_total = data.timing(items)
        conditioning = {"text_hidden": text[:, None, :], "seconds_start": seconds_start, "seconds_total": seconds_total,
                        "text_mask": torch.ones(len(items), 1, device=text.device, dtype=torch.long)}
        if self.keys:
            conditioning["key_classes"] = keys
        return images, conditioning

    def loss(self, denoise, images: torch.Tensor, conditioning: dict, generator: torch.Generator) -> torch.Tensor:
        device = images.device
        noise = torch.randn(images.shape, generator=generator, device=device)
        timesteps = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (images.shape[0],),
                                  generator=generator, device=device)
        with self.accelerator.autocast():
            return diffusion_loss(denoise, self.noise_scheduler, images, noise.contiguous(
                memory_format=torch.channels_last), timesteps, self.args.snr_gamma, **conditioning)

    def train_step(self, step: int) -> dict[str, float]:
        args = self.args
        generator = torch.Generator(device=self.accelerator.device).manual_seed(
            int(seeded_generator(args.seed, "pack", step).initial_seed()))
        items = torch.randint(0, len(self.train_data), (args.batch_size,), generator=generator,
                              device=self.accelerator.device)
        images, conditioning = self.batch(self.train_data, items, generator, args.caption_dropout)
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate(step)
        self.denoiser.train()
        try:
            loss = self.loss(self.forward, images, conditioning, generator)
        except Exception as error:  # torch.compile can fail on a new machine: train eagerly instead
            if self.forward is self.denoiser:
                raise
            logger.warning("torch.compile failed (%s: %s); training without it.", type(error).__name__, error)
            self.forward = self.denoiser
            loss = self.loss(self.forward, images, conditioning, generator)
        self.accelerator.backward(loss)
        if args.max_grad_norm > 0:
            self.accelerator.clip_grad_norm_(self.denoiser.parameters(), args.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.ema.step(self.unwrapped.parameters())
        metrics = {"loss": loss.detach(), "lr": self.optimizer.param_groups[0]["lr"]}
        if self.keys and (step + 1) % args.log_every == 0:  # logged steps only (reading them waits for a GPU)
            metrics.update(self.unwrapped.key_embedding.output_norms(), timing_vector_norm=self.timing_norm)
        return metrics

    # ---- validation, saving --------------------------------------------------------------------

    def valid_size(self) -> int:
        return len(self.valid_data) if self.valid_data is not None else 0

    def valid_batch_loss(self, denoiser: torch.nn.Module, start: int, stop: int) -> torch.Tensor:
        items = torch.arange(start, stop, device=self.accelerator.device)
        images, conditioning = self.batch(self.valid_data, items, None, 0.0)
        generator = torch.Generator(device=self.accelerator.device).manual_seed(start)
        return self.loss(denoiser, images, conditioning, generator)

    def save_outputs(self, folder: Path, step: int) -> None:
        """The float16 pipeline with EMA weights, the training clip list and `training_info.json`."""
        with ema_weights(self.ema, self.unwrapped):
            shipped = copy.deepcopy(self.pipeline).to(device="cpu", dtype=torch.float16)
        shipped.save_pretrained(folder)
        write_pack_splits(folder, self.pack, self.train_indices)
        info = {"step": step, "model": self.args.model, "preset": self.args.preset, "parameters": self.parameters,
                "prediction_type": self.noise_scheduler.config.prediction_type,
                "zero_terminal_snr": self.args.zero_terminal_snr, "pack": Path(self.args.pack).name,
                "reference_bpm": self.pack.info["reference_bpm"], "windows": len(self.train_data),
                "train_clips": len(self.train_clips), "subsets": self.args.subsets,
                "device": str(self.accelerator.device), "mixed_precision": self.accelerator.mixed_precision,
                "batch_size": self.args.batch_size, "key_conditioning": self.keys,
                "key_shifts": self.pack.info.get("key_shifts", 0)}
        if torch.cuda.is_available() and self.accelerator.device.type == "cuda":
            info["gpu"] = torch.cuda.get_device_name(self.accelerator.device)
        (folder / "training_info.json").write_text(json.dumps(info, indent=1))

    def trainer_state(self, step: int) -> dict:
        return {"model": self.args.model, "args": saved_arguments(self.args), "pack": str(self.args.pack)}
