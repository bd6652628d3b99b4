"""Unconditional mel-spectrogram diffusion (audio-diffusion): loops and breaks, variations, in/outpainting,
continuation.

Audio is a mel "image" (see `models/mel.py`); a `UNet2DModel` denoises it, in pixel space or in the
latent space of an optional `AutoencoderKL`; Griffin-Lim, or the optional HiFi-GAN `vocoder`, turns it back
into audio at `sample_rate` Hz.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from diffusers import AutoencoderKL, UNet2DModel
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from models.mel import Mel
from models.outputs import GeneratedAudio
from models.perturbed_attention import DEFAULT_PERTURBED_LAYERS, perturbed_attention_guidance, select_layers
from models.pipeline_base import MelPipelineBase, NoisePredictor, ProgressCallback, WindowCall
from models.schedulers import check_guidance_interval, in_guidance_interval
from models.vocoder import MelVocoder


@dataclass
class PerturbedGuidance:
    """Perturbed-attention guidance of one call (`WindowCall.conditioning`; `models.perturbed_attention`).

    Attributes:
        scale: how far the prediction moves away from the perturbed one; 0 disables guidance.
        layers: full names of the self-attention modules perturbed.
        interval: `(sigma_lo, sigma_hi)` noise levels of the guided steps (`check_guidance_interval`);
            None: every step.
    """

    scale: float
    layers: list[str]
    interval: tuple[float, float] | None = None


@dataclass
class Autoguidance:
    """Autoguidance of one call (`WindowCall.conditioning`; Karras et al. 2024, "Guiding a diffusion model with a
    bad version of itself"): the prediction is `weak + scale * (unet - weak)`, i.e. the main UNet's moved
    `scale - 1` times further away from the weak `guidance_unet`'s.

    Attributes:
        scale: w; 1 is the main UNet alone.
        interval: `(sigma_lo, sigma_hi)` noise levels of the guided steps (`check_guidance_interval`);
            None: every step.
    """

    scale: float
    interval: tuple[float, float] | None = None


def check_guidance_scale(name: str, scale: float, low: float, note: str = "") -> float:
    """A guidance scale `name` as a float in [`low`, 10], or a `ValueError` naming the value (`note`, e.g.
    " (1 = off)", follows the range in the message)."""
    try:
        value = float(scale)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [{low:g}, 10]{note}, got {scale!r}.")
    if not low <= value <= 10.0:
        raise ValueError(f"{name} must be in [{low:g}, 10]{note}, got {scale!r}.")
    return value


def check_autoguidance_scale(scale: float) -> float:
    """The autoguidance scale w as a float in [1, 10] (1 = off), or a `ValueError` naming the value."""
    return check_guidance_scale("autoguidance_scale", scale, 1.0, " (1 = off)")


def check_guidance_unet(unet: UNet2DModel, guidance_unet: UNet2DModel | None) -> None:
    """Raise `ValueError` unless `guidance_unet` (the weak model of autoguidance) takes and returns what `unet`
    does: same input and output channels and sample size (its widths and depth may differ)."""
    if guidance_unet is None:
        return
    for key in ("in_channels", "out_channels", "sample_size"):
        main, weak = unet.config.get(key), guidance_unet.config.get(key)
        if (list(main) if isinstance(main, (list, tuple)) else main) != (
                list(weak) if isinstance(weak, (list, tuple)) else weak):
            raise ValueError(f"guidance_unet must match the unet's {key} ({main!r}), got {weak!r}.")


def check_perturbed_attention_scale(scale: float) -> float:
    """The guidance scale as a float in [0, 10], or a `ValueError` naming the value."""
    return check_guidance_scale("perturbed_attention_scale", scale, 0.0)


class MelDiffusionPipeline(MelPipelineBase):
    """Generate audio with an unconditional mel diffusion model.

    Components: `unet` (`UNet2DModel`), `scheduler` (any diffusers scheduler), `mel` (`Mel`),
    for latent models `vae` (`AutoencoderKL`), and optionally `vocoder` (`MelVocoder`; Griffin-Lim without).

    Tempo-normalised models (`reference_bpm` set) were trained on bar-aligned windows at that one
    tempo: they generate at it and are time-stretched to the `bpm` asked for.

    `default_num_inference_steps` (a `model_index.json` entry): the checkpoint's own step count, the default of
    every call and of the studio's Loops tab and API (None: the class's 20).

    Perturbed-attention guidance (`models.perturbed_attention`): with `perturbed_attention_scale` above 0, each
    step whose noise level is in `guidance_interval` moves the prediction away from the same UNet's prediction
    with identity attention in `perturbed_attention_layers` (default: the middle block), at twice the UNet work
    of a plain step; these three config entries are the defaults of every call, which may override them.

    Autoguidance (Karras et al. 2024): with the optional `guidance_unet` component, a smaller or shorter-trained
    UNet of the same task, and `autoguidance_scale` w above 1, each step in `guidance_interval` predicts
    `weak + w * (unet - weak)`, at the cost of one extra (smaller) UNet call. The config entry is the default of
    every call. One guidance at a time: perturbed attention or autoguidance.
    """

    is_text_conditioned = False
    _optional_components: ClassVar[list[str]] = ["vae", "vocoder", "guidance_unet"]
    default_num_inference_steps = 20

    def __init__(
        self,
        unet: UNet2DModel,
        scheduler: SchedulerMixin,
        mel: Mel,
        vae: AutoencoderKL | None = None,
        reference_bpm: float | None = None,
        beats_per_bar: int = 4,
        vocoder: MelVocoder | None = None,
        perturbed_attention_scale: float = 0.0,
        perturbed_attention_layers: Sequence[str] | None = None,
        guidance_interval: Sequence[float] | None = None,
        guidance_unet: UNet2DModel | None = None,
        autoguidance_scale: float = 1.0,
        default_num_inference_steps: int | None = None,
    ):
        super().__init__()
        check_guidance_unet(unet, guidance_unet)
        self.register_modules(unet=unet, scheduler=scheduler, mel=mel, vae=vae, vocoder=vocoder,
                              guidance_unet=guidance_unet)
        scale = check_perturbed_attention_scale(perturbed_attention_scale)
        self.register_to_config(autoguidance_scale=check_autoguidance_scale(autoguidance_scale))
        if perturbed_attention_layers is not None:
            select_layers(unet, perturbed_attention_layers)
        interval = check_guidance_interval(guidance_interval)
        self.register_to_config(
            reference_bpm=reference_bpm, beats_per_bar=beats_per_bar, perturbed_attention_scale=scale,
            perturbed_attention_layers=None if perturbed_attention_layers is None else list(perturbed_attention_layers),
            guidance_interval=None if interval is None else list(interval),
        )
        self.check_vocoder()
        self.set_default_steps(default_num_inference_steps)

    def predict_noise(self, latents: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        return self.unet(latents, timestep).sample

    def perturbed_guidance(
        self, scale: float | None, layers: Sequence[str] | None, interval: Sequence[float] | None
    ) -> PerturbedGuidance | None:
        """A call's perturbed-attention guidance: its own arguments, else the pipeline's config entries;
        None when the scale is 0. Raises `ValueError` naming a bad value."""
        config = self.config
        scale = check_perturbed_attention_scale((config.get("perturbed_attention_scale") or 0.0) if scale is None
                                                else scale)
        layers = select_layers(self.unet, layers or config.get("perturbed_attention_layers")
                               or DEFAULT_PERTURBED_LAYERS)
        interval = check_guidance_interval(config.get("guidance_interval") if interval is None else interval)
        return PerturbedGuidance(scale, layers, interval) if scale > 0 else None

    def set_guidance_unet(self, guidance_unet: UNet2DModel | None) -> None:
        """Attach (or with None remove) the weak UNet of autoguidance, moved to this pipeline's device and dtype;
        `ValueError` unless it matches the unet (`check_guidance_unet`)."""
        check_guidance_unet(self.unet, guidance_unet)
        if guidance_unet is not None:
            guidance_unet = guidance_unet.to(device=self.device, dtype=self.unet.dtype)
        self.register_modules(guidance_unet=guidance_unet)

    def autoguidance(self, scale: float | None, interval: Sequence[float] | None) -> Autoguidance | None:
        """A call's autoguidance: its own arguments, else the pipeline's config entries; None when the scale is 1.
        Raises `ValueError` naming a bad value, or a scale above 1 without a `guidance_unet`."""
        config_scale = self.config.get("autoguidance_scale")
        scale = check_autoguidance_scale((1.0 if config_scale is None else config_scale) if scale is None else scale)
        if scale == 1.0:
            return None
        if getattr(self, "guidance_unet", None) is None:
            raise ValueError(f"autoguidance_scale {scale:g} needs a guidance_unet (the weak model); this pipeline "
                             "has none (autoguidance_scale 1 is off).")
        interval = check_guidance_interval(self.config.get("guidance_interval") if interval is None else interval)
        return Autoguidance(scale, interval)

    def noise_predictor(self, call: WindowCall, first_frames: torch.Tensor) -> NoisePredictor:
        """Unconditional: the same prediction for every window; with perturbed-attention guidance or
        autoguidance (`call.conditioning`) guided at the steps in its interval."""
        guidance: PerturbedGuidance | Autoguidance | None = call.conditioning
        if guidance is None:
            return self.predict_noise

        def predict(latents: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
            if not in_guidance_interval(self.scheduler, timestep, guidance.interval):
                return self.predict_noise(latents, timestep)
            if isinstance(guidance, Autoguidance):
                weak = self.guidance_unet(latents, timestep).sample
                return weak + guidance.scale * (self.predict_noise(latents, timestep) - weak)
            return perturbed_attention_guidance(self.unet, latents, timestep, guidance.layers, guidance.scale)

        return predict

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int = 1,
        num_inference_steps: int | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        audio: np.ndarray | torch.Tensor | None = None,
        audio_sampling_rate: int | None = None,
        strength: float = 1.0,
        keep_regions_in_s: Sequence[tuple[float, float]] | None = None,
        extend_in_s: float | None = None,
        audio_length_in_s: float | None = None,
        overlap_in_s: float | None = None,
        eta: float = 0.0,
        bpm: float | None = None,
        progress_callback: ProgressCallback | None = None,
        scheduler: str | None = None,
        perturbed_attention_scale: float | None = None,
        perturbed_attention_layers: Sequence[str] | None = None,
        guidance_interval: Sequence[float] | None = None,
        autoguidance_scale: float | None = None,
        return_dict: bool = True,
    ) -> GeneratedAudio | tuple:
        """Generate `batch_size` clips.

        Args:
            batch_size: number of clips.
            num_inference_steps: denoising steps per window (`default_num_inference_steps` if None).
            generator: seeds everything random (one, or one per clip).
            audio: input for audio-to-audio, `[samples]` or `[channels, samples]`, at `audio_sampling_rate` Hz.
            strength: for a variation of `audio`: 0 returns the input's mel reconstruction, 1 ignores
                the input; regions outside `keep_regions_in_s` are regenerated at this strength.
            keep_regions_in_s: in/outpainting: `(start_s, end_s)` regions of `audio` kept as they are.
            extend_in_s: continuation: seconds to add after the end of `audio`.
            audio_length_in_s: length of a clip generated from scratch (default: one window).
            overlap_in_s: context carried from one window into the next when growing audio
                (default: `default_overlap_in_s`, one bar for tempo-normalised models).
            eta: DDIM's eta (0 = deterministic sampling).
            bpm: tempo of the output in BPM, for tempo-normalised models: generated at
                `reference_bpm`, then time-stretched so that `audio_length_in_s` holds exactly that
                many seconds at `bpm` (None: the reference tempo).
            progress_callback: called as `(steps_done, steps_total)` after each denoising step.
            scheduler: a sampler for this call only (`models.schedulers.SCHEDULERS`; None: the pipeline's
                own); the pipeline keeps its own for the next call.
            perturbed_attention_scale: perturbed-attention guidance, 0 (off) to 10 (None: the pipeline's
                `perturbed_attention_scale` config, 0 if unset).
            perturbed_attention_layers: self-attention modules whose attention is replaced by the identity in
                the guiding prediction, by full name or dotted prefix (`mid_block`, `up_blocks.0`; None: the
                config's, else the middle block).
            guidance_interval: `(sigma_lo, sigma_hi)`: guide only steps whose noise level sigma (dimensionless,
                see `models.schedulers.check_guidance_interval`) is in `(sigma_lo, sigma_hi]` (None: the
                config's, else every step); applies to autoguidance too.
            autoguidance_scale: autoguidance w, 1 (off) to 10: the prediction is `weak + w * (unet - weak)` with
                the `guidance_unet` as the weak model (None: the pipeline's `autoguidance_scale` config, 1 if
                unset); one guidance at a time, so perturbed attention must then be off.
        Returns:
            `GeneratedAudio` with `audios` `[batch_size, 1, samples]` at `sample_rate` Hz.
        """
        # 1. Check inputs
        num_inference_steps = self.default_num_inference_steps if num_inference_steps is None else num_inference_steps
        overlap_in_s = self.default_overlap_in_s if overlap_in_s is None else overlap_in_s
        self.check_common_inputs(
            num_inference_steps, strength, batch_size, audio, keep_regions_in_s, extend_in_s, overlap_in_s
        )
        self.check_bpm(bpm, audio)
        guidance = self.perturbed_guidance(perturbed_attention_scale, perturbed_attention_layers, guidance_interval)
        autoguidance = self.autoguidance(autoguidance_scale, guidance_interval)
        if guidance is not None and autoguidance is not None:
            raise ValueError(f"Use one guidance at a time: perturbed_attention_scale {guidance.scale:g} and "
                             f"autoguidance_scale {autoguidance.scale:g} are both on (set one to 0 / 1).")
        guidance = guidance or autoguidance
        if audio_length_in_s is not None and not 0 < audio_length_in_s <= self.max_audio_length_in_s:
            raise ValueError(
                f"audio_length_in_s must be in (0, {self.max_audio_length_in_s}] s, got {audio_length_in_s!r}."
            )

        # 2. Define call parameters
        original = None if audio is None else self.prepare_input_audio(audio, audio_sampling_rate)
        if original is None:
            output_samples = round((audio_length_in_s or self.window_seconds) * self.sample_rate)
            num_samples = self.samples_at_reference(output_samples, bpm)
        else:
            num_samples = output_samples = len(original) + round((extend_in_s or 0.0) * self.sample_rate)

        phase_seeds = self.phase_seeds(generator, batch_size)

        # 3. Denoise: the input's windows, or generated windows, grown to num_samples
        call = WindowCall(batch_size, num_inference_steps, generator, eta, conditioning=guidance,
                          scheduler=self.scheduler_for(scheduler))
        frames = self.generate_frames(call, num_samples, original, strength, keep_regions_in_s, bool(extend_in_s),
                                      overlap_in_s, progress_callback)

        # 4. Mel -> audio (vocoder or Griffin-Lim), exactly num_samples long, original put back where kept
        output = self.frames_to_output(frames, num_samples, original, keep_regions_in_s, bool(extend_in_s),
                                       overlap_in_s, phase_seeds)

        # 5. From the reference tempo to the asked one, exactly output_samples long
        self.stretch_output(output, output_samples)
        return output if return_dict else output.to_tuple()
