"""The diffusion trainer: unconditional or text + timing mel diffusion, on mel images or a trained autoencoder's
latents, with accelerate, EMA weights, AdamW with warmup + cosine decay, epsilon or v-prediction, min-SNR
weighting, caption dropout for classifier-free guidance, and demo generations beside every checkpoint.

Text + timing models are conditioned through `TextToMelPipeline.unet_conditioning`, the function
inference uses; the text encoder stays frozen (its hidden states are cached per caption) while the
projection model (text projection, timing embedders) trains with the UNet.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from accelerate import Accelerator
from diffusers import AutoencoderKL, DDPMScheduler
from diffusers.optimization import get_cosine_schedule_with_warmup
from diffusers.training_utils import EMAModel

from models.mel import Mel
from models.pipeline_mel_diffusion import MelDiffusionPipeline
from models.pipeline_text_to_mel import TextToMelPipeline
from models.schedulers import make_scheduler
from models.text_encoder import load_text_encoder, text_hidden_size
from training.batches import Batch, WindowSource, positions_for, seeded_generator
from training.engine import (
    CHECKPOINT_PREFIX,
    DenoiserTrainer,
    ema_weights,
    latest_checkpoint,
    saved_arguments,
)
from training.latents import LatentCache
from training.mel_cache import default_cache_dir
from training.prepare import prepare_training_data
from training.presets import (
    PRESETS,
    build_conditional_unet,
    build_projection,
    build_unet,
    build_vocoder,
    count_parameters,
)
from training.recipe import diffusion_loss, noise_schedule
from training.text_cache import TextEmbeddings

logger = logging.getLogger(__name__)


class UnconditionalDenoiser(torch.nn.Module):
    """The trainable part of an unconditional model: the UNet, called as the pipeline calls it."""

    def __init__(self, unet: torch.nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, noisy: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        return self.unet(noisy, timesteps).sample


class TextTimingDenoiser(torch.nn.Module):
    """The trainable part of a text + timing model: projection model + UNet, conditioned as at inference.

    One module, so accelerate's DDP wrapper sees (and synchronises) every trained parameter.
    """

    def __init__(self, pipeline: TextToMelPipeline):
        super().__init__()
        self.unet = pipeline.unet
        self.projection_model = pipeline.projection_model
        self.key_embedding = pipeline.key_embedding  # None (not a submodule) without one
        self._pipeline = (pipeline,)  # a tuple: not registered as a submodule

    def forward(self, noisy: torch.Tensor, timesteps: torch.Tensor, text_hidden: torch.Tensor,
                text_mask: torch.Tensor, seconds_start: torch.Tensor, seconds_total: torch.Tensor,
                key_classes: torch.Tensor | None = None) -> torch.Tensor:
        pipeline = self._pipeline[0]
        # The second half of `TextToMelPipeline.encode_prompt` (the first, the frozen encoder, is cached).
        projected = self.projection_model(text_hidden_states=text_hidden.to(self.projection_model.dtype))
        conditioning = pipeline.unet_conditioning(projected.text_hidden_states, text_mask, seconds_start, seconds_total,
                                                  key_classes)
        return self.unet(noisy, timesteps, **conditioning).sample


# ---- autoencoders for latent models --------------------------------------------------------

def resolve_vae_folder(path: str | Path) -> Path:
    """A folder with `vae/` (and `mel/`): the folder itself, or the newest checkpoint of an autoencoder run."""
    path = Path(path).expanduser()
    if (path / "vae" / "config.json").exists():
        return path
    latest = latest_checkpoint(path)
    if latest is not None and (latest / "vae" / "config.json").exists():
        return latest
    raise FileNotFoundError(f"No autoencoder at {path}: expected a folder with vae/config.json (a pipeline or a "
                            f"`--model vae` checkpoint) or a `--model vae` run folder with {CHECKPOINT_PREFIX}* "
                            "inside.")


def load_vae(path: str | Path) -> tuple[AutoencoderKL, Mel]:
    """A frozen trained autoencoder and the mel settings it was trained on."""
    folder = resolve_vae_folder(path)
    if not (folder / "mel" / "mel_config.json").exists():
        raise FileNotFoundError(f"{folder} has vae/ but no mel/mel_config.json: the mel settings of the autoencoder "
                                "are unknown.")
    vae = AutoencoderKL.from_pretrained(folder, subfolder="vae").eval().requires_grad_(False)
    return vae, Mel.from_pretrained(folder, subfolder="mel")


# ---- the trainer ---------------------------------------------------------------------------

class DiffusionTrainer(DenoiserTrainer):
    """Trains `MelDiffusionPipeline` (`args.model == "unconditional"`) or `TextToMelPipeline` (`"text"`).

    Args:
        args: the parsed `python -m training.train` arguments.
        accelerator: from `engine.make_accelerator`.
        resume_from: a checkpoint folder to rebuild the models from (its training state is loaded by the caller).
    """

    def __init__(self, args: argparse.Namespace, accelerator: Accelerator, resume_from: Path | None = None):
        self.args = args
        self.accelerator = accelerator
        self.text = args.model == "text"
        self.preset = PRESETS[args.preset]
        device = accelerator.device

        # 1. Mel settings and the autoencoder (latent models take the autoencoder's mel settings)
        self.vae = None
        if resume_from is not None:
            pipeline = self._load_pipeline(resume_from)
            self.vae = pipeline.vae
            mel = pipeline.mel
        elif args.vae:
            self.vae, mel = load_vae(args.vae)
        else:
            mel = Mel(**mel_settings(args))
        self.mel = mel

        # 2. Data: split, cached mels, windows (unconditional) or random crops (text + timing)
        with accelerator.main_process_first():
            self.data = prepare_training_data(
                args.data_dir, mel, "crop" if self.text else "fixed", args.cache_dir, args.valid_fraction, args.seed,
                args.caption_column, args.group_column, args.window_stride, args.silence_threshold_db,
                args.pad_short_clips, need_captions=self.text, quiet=not accelerator.is_main_process or args.quiet,
            )
        logger.info("Data: %s", self.data.splits.summary())

        # 3. Models (new, or as saved in the checkpoint we resume from)
        if resume_from is None:
            pipeline = self._new_pipeline(mel)
        self.pipeline = pipeline
        self.pipeline.set_progress_bar_config(disable=True)
        self.noise_scheduler = DDPMScheduler.from_config(pipeline.scheduler.config)
        if self.text:
            self.denoiser = TextTimingDenoiser(pipeline)
            pipeline.text_encoder.to(device)
        else:
            self.denoiser = UnconditionalDenoiser(pipeline.unet)
        if self.vae is not None:
            self.vae.to(device)
        self.parameters = count_parameters(self.denoiser)
        logger.info("Training %s parameters (%.2f M).", type(pipeline.unet).__name__, self.parameters / 1e6)

        # 4. What the model sees: images, or latents encoded once; cached text hidden states
        with accelerator.main_process_first():
            self.train_source = self._source(self.data.train, self.data.train_windows, args.caption_dropout)
            self.valid_source = (self._source(self.data.valid, self.data.valid_windows, 0.0)
                                 if self.data.valid and (self.text or len(self.data.valid_windows)) else None)
            if self.text:
                self.text_embeddings = TextEmbeddings(
                    pipeline.tokenizer, pipeline.text_encoder, pipeline.config.text_encoder_name_or_path,
                    pipeline.config.max_text_length, Path(args.cache_dir) if args.cache_dir else default_cache_dir(),
                )
                captions = [item.file.text or "" for item in self.data.train + self.data.valid]
                self.text_embeddings.prepare(captions, quiet=not accelerator.is_main_process or args.quiet)

        # 5. Optimizer, learning-rate schedule, EMA; accelerate
        self.optimizer = torch.optim.AdamW(
            self.denoiser.parameters(), lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2),
            weight_decay=args.weight_decay,
        )
        # accelerate steps a prepared scheduler once per process, so the schedule is stretched to match.
        self.lr_scheduler = get_cosine_schedule_with_warmup(
            self.optimizer, num_warmup_steps=args.warmup_steps * accelerator.num_processes,
            num_training_steps=args.max_steps * accelerator.num_processes,
        )
        self.denoiser, self.optimizer, self.lr_scheduler = accelerator.prepare(
            self.denoiser, self.optimizer, self.lr_scheduler)
        self.ema = EMAModel(self.unwrapped.parameters(), decay=args.ema_decay, use_ema_warmup=True,
                            power=args.ema_power)
        self.ema.to(device)
        accelerator.register_for_checkpointing(self.ema)

    # ---- building --------------------------------------------------------------------------

    def _load_pipeline(self, folder: Path) -> MelDiffusionPipeline | TextToMelPipeline:
        pipeline_class = TextToMelPipeline if self.text else MelDiffusionPipeline
        pipeline = pipeline_class.from_pretrained(folder)
        if pipeline.vae is not None:
            pipeline.vae.eval().requires_grad_(False)
        return pipeline

    def _new_pipeline(self, mel: Mel) -> MelDiffusionPipeline | TextToMelPipeline:
        args, preset = self.args, self.preset
        mel_config = dict(mel.config)
        noise_scheduler = noise_schedule(args.prediction_type, args.beta_schedule,
                                         getattr(args, "zero_terminal_snr", False))
        # The pipelines sample with DPM-Solver++ (20 steps by default), built on the training noise schedule.
        scheduler = make_scheduler("dpm++", noise_scheduler.config, bounded=self.vae is None)
        factor, channels = 1, 1
        if self.vae is not None:
            factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
            channels = self.vae.config.latent_channels
        torch.manual_seed(args.seed)
        if not self.text:
            unet = build_unet(preset, mel_config, channels, factor)
            return MelDiffusionPipeline(unet=unet, scheduler=scheduler, mel=mel, vae=self.vae,
                                        vocoder=build_vocoder(preset, getattr(args, "vocoder", None)))
        tokenizer, text_encoder = load_text_encoder(args.text_encoder)
        longest = max(item.seconds for item in self.data.train)
        max_seconds = args.max_seconds or max(math.ceil(longest), math.ceil(mel.seconds_per_image))
        projection = build_projection(preset, text_hidden_size(text_encoder), max_seconds)
        unet = build_conditional_unet(preset, mel_config, channels, factor)
        return TextToMelPipeline(
            unet=unet, scheduler=scheduler, mel=mel, projection_model=projection, text_encoder=text_encoder,
            tokenizer=tokenizer, vae=self.vae, text_encoder_name_or_path=args.text_encoder,
            max_text_length=args.max_text_length, vocoder=build_vocoder(preset, getattr(args, "vocoder", None)),
        )

    def _source(self, file_mels, windows, caption_dropout: float) -> WindowSource:
        args, config = self.args, self.mel.config
        common = dict(x_res=config.x_res, hop_length=config.hop_length, sample_rate=config.sample_rate,
                      top_db=config.top_db, seed=args.seed, caption_dropout=caption_dropout)
        if self.vae is None:
            return WindowSource(file_mels, mode="crop" if self.text else "fixed", windows=windows, **common)
        cache = LatentCache(Path(args.cache_dir) if args.cache_dir else default_cache_dir(), self.mel, self.vae)
        quiet = args.quiet or not self.accelerator.is_main_process
        if self.text:
            latents, starts = cache.crop_bank(file_mels, args.latent_crops, args.seed, quiet)
            return WindowSource(file_mels, mode="crop", latents=latents, crop_starts=starts, **common)
        stride = args.window_stride or config.x_res
        latents = cache.fixed_bank(file_mels, windows, stride, quiet)
        return WindowSource(file_mels, mode="fixed", windows=windows, latents=latents, **common)

    # ---- one step ----------------------------------------------------------------------------

    def model_inputs(self, batch: Batch) -> torch.Tensor:
        """What is noised: mel images in [-1, 1], or latents times the autoencoder's scaling factor."""
        inputs = batch.inputs.to(self.accelerator.device)
        return inputs if self.vae is None else inputs * self.vae.config.scaling_factor

    def conditioning(self, batch: Batch) -> dict:
        if not self.text:
            return {}
        device = self.accelerator.device
        hidden, mask = self.text_embeddings.batch(batch.captions)
        return dict(text_hidden=hidden.to(device), text_mask=mask.to(device),
                    seconds_start=batch.seconds_start.to(device), seconds_total=batch.seconds_total.to(device))

    def loss(self, denoiser: torch.nn.Module, batch: Batch, generator: torch.Generator) -> torch.Tensor:
        """Mean (min-SNR weighted) squared error of the predicted noise (or velocity) for a seeded noising."""
        device = self.accelerator.device
        clean = self.model_inputs(batch)
        noise = torch.randn(clean.shape, generator=generator).to(device)
        timesteps = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (clean.shape[0],),
                                  generator=generator).to(device)
        return diffusion_loss(denoiser, self.noise_scheduler, clean, noise, timesteps, self.args.snr_gamma,
                              **self.conditioning(batch))

    def train_step(self, step: int) -> dict[str, float]:
        """One optimizer step: `gradient_accumulation_steps` micro-batches on every process."""
        args, accelerator = self.args, self.accelerator
        accumulation = accelerator.gradient_accumulation_steps
        self.denoiser.train()
        losses = []
        fingerprint = None
        for micro in range(accumulation):
            positions = positions_for(step, micro, accelerator.process_index, args.batch_size, accumulation,
                                      accelerator.num_processes)
            batch = self.train_source.batch(positions)
            fingerprint = batch.fingerprint if fingerprint is None else fingerprint
            generator = seeded_generator(args.seed, "noise", step, micro, accelerator.process_index)
            with accelerator.accumulate(self.denoiser):
                loss = self.loss(self.denoiser, batch, generator)
                accelerator.backward(loss)
                if accelerator.sync_gradients and args.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(self.denoiser.parameters(), args.max_grad_norm)
                self.optimizer.step()
                self.lr_scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
            losses.append(loss.detach())
        self.ema.step(self.unwrapped.parameters())
        loss = accelerator.gather(torch.stack(losses).mean()[None]).mean()
        return {"loss": float(loss), "lr": self.lr_scheduler.get_last_lr()[0], "batch": fingerprint}

    # ---- validation, saving -----------------------------------------------------------------

    def valid_size(self) -> int:
        return len(self.valid_source) if self.valid_source is not None else 0

    def valid_batch_loss(self, denoiser: torch.nn.Module, start: int, stop: int) -> torch.Tensor:
        batch = self.valid_source.batch(np.arange(start, stop))
        with self.accelerator.autocast():
            return self.loss(denoiser, batch, seeded_generator(self.args.seed, "valid", start))

    def save_outputs(self, folder: Path, step: int) -> None:
        """The pipeline with EMA weights (loadable by `from_pretrained`), demos, split lists, training info."""
        with ema_weights(self.ema, self.unwrapped):
            self.pipeline.save_pretrained(folder)
            if self.args.num_demos > 0:
                self.write_demos(folder / "demos")
        self.data.write_splits(folder)
        info = {"step": step, "model": self.args.model, "preset": self.args.preset, "latent": self.vae is not None,
                "parameters": self.parameters, "prediction_type": self.noise_scheduler.config.prediction_type,
                "data": self.data.splits.summary(), "windows": len(self.train_source)}
        (folder / "training_info.json").write_text(json.dumps(info, indent=1))

    def demo_prompts(self) -> list[str]:
        if self.args.demo_prompt:
            return list(self.args.demo_prompt)[: self.args.num_demos]
        captions = [item.file.text for item in self.data.valid + self.data.train if item.file.text]
        return list(dict.fromkeys(captions))[: self.args.num_demos] or [""]

    @torch.no_grad()
    def write_demos(self, folder: Path) -> None:
        """A few generations with fixed seeds: `demo-<i>.wav` and `demo-<i>.png` (the mel spectrogram)."""
        folder.mkdir(parents=True, exist_ok=True)
        generator = torch.Generator(device=self.accelerator.device).manual_seed(self.args.seed)
        self.unwrapped.eval()
        try:
            if self.text:
                prompts = self.demo_prompts()
                output = self.pipeline(prompts, seconds_total=self.mel.seconds_per_image,
                                       num_inference_steps=self.args.demo_steps,
                                       guidance_scale=self.args.demo_guidance_scale, generator=generator)
            else:
                prompts = []
                output = self.pipeline(batch_size=self.args.num_demos, num_inference_steps=self.args.demo_steps,
                                       generator=generator)
        finally:
            self.unwrapped.train()
        for index, (audio, picture) in enumerate(zip(output.audios, output.images)):
            sf.write(folder / f"demo-{index}.wav", audio[0], output.sample_rate)
            picture.save(folder / f"demo-{index}.png")
        (folder / "demos.json").write_text(json.dumps(
            {"prompts": prompts, "seed": self.args.seed, "num_inference_steps": self.args.demo_steps,
             "guidance_scale": self.args.demo_guidance_scale if self.text else None,
             "seconds": self.mel.seconds_per_image}, indent=1))

    def trainer_state(self, step: int) -> dict:
        return {"model": self.args.model, "args": saved_arguments(self.args),
                "data": self.data.splits.summary()}


def mel_settings(args: argparse.Namespace) -> dict:
    """The preset's `Mel` settings with any command-line overrides."""
    settings = dict(PRESETS[args.preset].mel)
    for key in ("sample_rate", "x_res", "y_res", "n_fft", "hop_length"):
        if getattr(args, key, None):
            settings[key] = getattr(args, key)
    return settings
