"""Stable Audio Open 1.0 (`stabilityai/stable-audio-open-1.0`: 44.1 kHz stereo, up to ~47 s)
behind the project's text+timing call interface, so the app can switch between it and our own mel
pipeline.

Text-to-audio runs diffusers' `StableAudioPipeline` as it is; audio-to-audio runs our own denoising
loop over the pipeline's components so that `strength` really sets how much of the input survives.
"""
from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable

import numpy as np
import torch
from diffusers import StableAudioPipeline
from diffusers.models.embeddings import get_1d_rotary_pos_embed
from diffusers.utils.torch_utils import randn_tensor

from models.device import pick_device, pick_dtype
from models.hub import ModelUnavailableError, explain_unavailable
from models.outputs import GeneratedAudio
from music.audio import prepare_audio_channels
from music.spectrogram import mel_image

logger = logging.getLogger(__name__)

DEFAULT_MODEL_ID = "stabilityai/stable-audio-open-1.0"

# Input audio outside this range of sample rates (Hz) is rejected rather than resampled.
MIN_AUDIO_SAMPLING_RATE = 8_000
MAX_AUDIO_SAMPLING_RATE = 192_000
MAX_AUDIO_CHANNELS = 8
MAX_INFERENCE_STEPS = 1000



class StableAudioOpenPipeline:
    """`StableAudioPipeline` with the project's call interface (see `__call__`).

    Attributes:
        pipeline: the wrapped diffusers pipeline (its components are used directly for
            audio-to-audio).
        sample_rate: output sample rate in Hz (44100 for the real model).
        channels: output channels (2 for the real model).
        max_seconds_total: length of the model's window in seconds, the longest clip one call
            returns (about 47.55 s for the real model).
        max_timing_seconds: largest `seconds_start + seconds_total` the timing conditioning
            represents (512 s for the real model).

    Timing follows stable-audio-tools: the model's window starts at `seconds_start` in a piece
    that ends at `seconds_start + seconds_total`; sample 0 of the window is the start time, and
    the returned clip is the window's first `seconds_total` seconds.
        is_text_conditioned: always True: the prompt steers generation.

    Not safe to call from two threads at once: calls share the pipeline's scheduler state.
    """

    is_text_conditioned = True

    def __init__(self, pipeline: StableAudioPipeline) -> None:
        self.pipeline = pipeline
        self.sample_rate = int(pipeline.vae.config.sampling_rate)
        self.channels = int(pipeline.vae.config.audio_channels)
        self.hop_length = int(pipeline.vae.hop_length)
        self.window_length = int(pipeline.transformer.config.sample_size) * self.hop_length
        self.max_seconds_total = self.window_length / self.sample_rate
        # Largest `seconds_start + seconds_total` the timing embedders tell apart (512 s for the
        # real model); they clamp anything above it.
        self.max_timing_seconds = float(pipeline.projection_model.config.max_value)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike = DEFAULT_MODEL_ID,
        device: str | torch.device | None = None,
        torch_dtype: torch.dtype | None = None,
    ) -> StableAudioOpenPipeline:
        """Load a hub id or a local folder laid out like `stabilityai/stable-audio-open-1.0`.

        Args:
            name_or_path: hub repo id, or a folder with `model_index.json`, `vae/`,
                `text_encoder/`, `tokenizer/`, `projection_model/`, `transformer/`, `scheduler/`.
            device: where to run; CUDA when available, else CPU (`models.device.pick_device`).
            torch_dtype: weights' dtype; bf16/fp16 on CUDA, float32 on CPU when not given.

        Raises:
            ModelUnavailableError: the hub could not be reached and the model is not cached, or
                the repo is gated (licence not accepted / not logged in) or does not exist.
            FileNotFoundError: `name_or_path` looks like a local path but no such folder exists.
        """
        name = os.fspath(name_or_path)
        looks_local = name.startswith((".", "/", "~", "\\")) or os.path.isabs(name)
        if looks_local and not os.path.isdir(os.path.expanduser(name)):
            raise FileNotFoundError(f"No model folder at {name!r}.")
        if looks_local:
            name = os.path.expanduser(name)

        device = pick_device(device)
        torch_dtype = pick_dtype(device, torch_dtype)
        try:
            pipeline = StableAudioPipeline.from_pretrained(name, torch_dtype=torch_dtype)
        except Exception as error:
            unavailable = explain_unavailable(name, error)
            if unavailable is None:
                raise
            raise unavailable from error
        pipeline = pipeline.to(device)
        # Progress goes through `progress_callback`; diffusers' tqdm bars would only clutter logs.
        pipeline.set_progress_bar_config(disable=True)
        return cls(pipeline)

    @property
    def device(self) -> torch.device:
        return self.pipeline._execution_device

    def check_inputs(
        self,
        prompt: str | list[str],
        negative_prompt: str | list[str] | None,
        seconds_start: float,
        seconds_total: float,
        num_inference_steps: int,
        guidance_scale: float,
        num_waveforms_per_prompt: int,
        audio: np.ndarray | None,
        audio_sampling_rate: int | None,
        strength: float,
    ) -> None:
        """Raise `ValueError` naming the offending argument and its allowed range."""
        if isinstance(prompt, str):
            num_prompts = 1
        elif isinstance(prompt, (list, tuple)):
            if len(prompt) == 0:
                raise ValueError("`prompt` is an empty list: pass a string or at least one string.")
            if not all(isinstance(p, str) for p in prompt):
                raise ValueError(f"`prompt` must be a string or a list of strings, got {prompt!r}.")
            num_prompts = len(prompt)
        else:
            raise ValueError(f"`prompt` must be a string or a list of strings, got {type(prompt)}.")  # noqa: TRY004 (callers catch ValueError for bad input)

        if negative_prompt is not None and not isinstance(negative_prompt, str):
            if not isinstance(negative_prompt, (list, tuple)) or not all(
                isinstance(p, str) for p in negative_prompt
            ):
                raise ValueError(
                    "`negative_prompt` must be None, a string or a list of strings, "
                    f"got {negative_prompt!r}."
                )
            if len(negative_prompt) != num_prompts:
                raise ValueError(
                    f"`negative_prompt` has {len(negative_prompt)} entries but `prompt` has "
                    f"{num_prompts}: pass one negative prompt per prompt, or one string for all."
                )

        if not _is_real(seconds_start) or seconds_start < 0:
            raise ValueError(
                f"`seconds_start` must be a finite number >= 0 s, got {seconds_start}."
            )
        if not _is_real(seconds_total) or seconds_total <= 0:
            raise ValueError(f"`seconds_total` must be a finite number > 0 s, got {seconds_total}.")
        # A hair of tolerance so that `seconds_total=backend.max_seconds_total` itself is accepted.
        if seconds_total > self.max_seconds_total + 1e-9:
            raise ValueError(
                f"`seconds_total` must be <= {self.max_seconds_total:.3f} s (the model's window), "
                f"got {seconds_total} s."
            )
        # The timing embedders clamp larger values: a later end would be conditioned as this one.
        if seconds_start + seconds_total > self.max_timing_seconds + 1e-9:
            raise ValueError(
                f"`seconds_start + seconds_total` must be <= {self.max_timing_seconds:g} s (the "
                f"largest time the model's timing conditioning represents), got {seconds_start} + "
                f"{seconds_total} = {seconds_start + seconds_total} s."
            )
        if round(seconds_total * self.sample_rate) < 1:
            raise ValueError(
                f"`seconds_total` must be at least one sample (1/{self.sample_rate} s), "
                f"got {seconds_total}."
            )

        if not _is_int(num_inference_steps) or not 1 <= num_inference_steps <= MAX_INFERENCE_STEPS:
            raise ValueError(
                f"`num_inference_steps` must be an integer in [1, {MAX_INFERENCE_STEPS}], "
                f"got {num_inference_steps}."
            )
        # Guidance is off at <= 1 (diffusers' convention), so 0 < g < 1 would silently act as 1.
        if not _is_real(guidance_scale) or guidance_scale < 0 or 0 < guidance_scale < 1:
            raise ValueError(
                "`guidance_scale` must be 0 or 1 (no classifier-free guidance) or a finite number "
                f"> 1, got {guidance_scale}."
            )
        if not _is_int(num_waveforms_per_prompt) or num_waveforms_per_prompt < 1:
            raise ValueError(
                "`num_waveforms_per_prompt` must be an integer >= 1, "
                f"got {num_waveforms_per_prompt}."
            )
        if not _is_real(strength) or not 0 <= strength <= 1:
            raise ValueError(f"`strength` must be in [0, 1], got {strength}.")

        if audio is None:
            return
        audio = np.asarray(audio)
        if audio.ndim not in (1, 2):
            raise ValueError(
                "`audio` must be `[samples]`, `[channels, samples]` or `[samples, channels]`, "
                f"got shape {audio.shape}."
            )
        if audio.size == 0:
            raise ValueError(f"`audio` is empty (shape {audio.shape}).")
        if audio.ndim == 2 and min(audio.shape) > MAX_AUDIO_CHANNELS:
            raise ValueError(
                f"`audio` has {min(audio.shape)} channels (its shorter axis), at most "
                f"{MAX_AUDIO_CHANNELS} are supported (shape {audio.shape})."
            )
        if not np.issubdtype(audio.dtype, np.number) or np.iscomplexobj(audio):
            raise ValueError(f"`audio` must hold real numbers, got dtype {audio.dtype}.")
        if not np.isfinite(audio).all():
            raise ValueError("`audio` contains NaN or infinite samples.")
        if (
            audio_sampling_rate is None
            or not _is_real(audio_sampling_rate)
            or not MIN_AUDIO_SAMPLING_RATE <= audio_sampling_rate <= MAX_AUDIO_SAMPLING_RATE
        ):
            raise ValueError(
                f"`audio_sampling_rate` must be given with `audio`, in [{MIN_AUDIO_SAMPLING_RATE}, "
                f"{MAX_AUDIO_SAMPLING_RATE}] Hz, got {audio_sampling_rate}."
            )

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str],
        negative_prompt: str | list[str] | None = None,
        seconds_start: float = 0.0,
        seconds_total: float = 10.0,
        num_inference_steps: int = 100,
        guidance_scale: float = 7.0,
        num_waveforms_per_prompt: int = 1,
        generator: torch.Generator | None = None,
        audio: np.ndarray | None = None,
        audio_sampling_rate: int | None = None,
        strength: float = 0.7,
        progress_callback: Callable[[int, int], None] | None = None,
        return_dict: bool = True,
    ) -> GeneratedAudio | tuple:
        """Generate audio from text, or vary `audio` guided by text.

        Args:
            prompt: what to generate; a list makes a batch.
            negative_prompt: what to steer away from; one string for all prompts or one per prompt.
            seconds_start: where in a longer piece the returned clip starts, in s (timing
                conditioning; sample 0 of the output is this time of the piece).
            seconds_total: length of the returned audio in s, at most `max_seconds_total`; the
                piece is conditioned to end with the clip, at `seconds_start + seconds_total`
                (at most `max_timing_seconds`).
            num_inference_steps: denoising steps of the full schedule (audio-to-audio runs the last
                `floor(strength * num_inference_steps)` of them).
            guidance_scale: classifier-free guidance weight; <= 1 turns guidance off.
            num_waveforms_per_prompt: outputs per prompt.
            generator: seeds the initial noise and the scheduler's stochastic noise.
            audio: init audio for audio-to-audio: `[samples]`, or 2-D with the shorter axis as
                channels (`[channels, samples]` or soundfile's `[samples, channels]`), float in
                [-1, 1] or integer PCM (as `music.audio` takes it). It is resampled, mixed to the
                model's channels, cut to `seconds_total` (or padded with silence) and placed at
                the start of the model's window. The same audio is used for every prompt
                and waveform.
            audio_sampling_rate: sample rate of `audio` in Hz, 8 kHz to 192 kHz.
            strength: how far the output may move from `audio`: 0 returns the input's VAE
                reconstruction untouched, 1 ignores it (pure noise, as without `audio`). The input
                latents get noise of the schedule's sigma at step
                `num_inference_steps - floor(strength * num_inference_steps)`; with the
                real model's exponential schedule (sigma 500 -> 0.3) that sigma is about
                `0.3 * 1667 ** strength`, so the input's structure is mostly gone above ~0.5.
            progress_callback: called after every denoising step with `(steps_done, steps_total)`.
            return_dict: False returns `(audios, sample_rate, images)`.

        Returns:
            `GeneratedAudio` with `audios` float32 `[batch * num_waveforms_per_prompt, channels,
            round(seconds_total * sample_rate)]` clipped to [-1, 1], `sample_rate` in Hz and one
            display mel spectrogram per waveform.
        """
        # 1. Check inputs
        self.check_inputs(
            prompt,
            negative_prompt,
            seconds_start,
            seconds_total,
            num_inference_steps,
            guidance_scale,
            num_waveforms_per_prompt,
            audio,
            audio_sampling_rate,
            strength,
        )

        # 2. Define call parameters
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        if isinstance(negative_prompt, str):
            negative_prompts = [negative_prompt] * len(prompts)
        else:
            negative_prompts = None if negative_prompt is None else list(negative_prompt)
        seconds_start, seconds_total = float(seconds_start), float(seconds_total)
        # diffusers conditions on the clip's end time (`audio_end_in_s`), not on its length.
        seconds_end = seconds_start + seconds_total
        num_samples = round(seconds_total * self.sample_rate)

        # 3. Prepare the init audio: resampled, channel-matched, at the start of the window
        init_waveform = None
        if audio is not None:
            init_waveform = self.prepare_init_waveform(audio, audio_sampling_rate, num_samples)

        # 4. Denoise: diffusers' own loop from noise, ours from the init audio
        if init_waveform is None:
            latents = self.denoise_from_noise(
                prompts,
                negative_prompts,
                seconds_start,
                seconds_end,
                num_inference_steps,
                guidance_scale,
                num_waveforms_per_prompt,
                generator,
                progress_callback,
            )
        else:
            latents = self.denoise_from_audio(
                init_waveform,
                strength,
                prompts,
                negative_prompts,
                seconds_start,
                seconds_end,
                num_inference_steps,
                guidance_scale,
                num_waveforms_per_prompt,
                generator,
                progress_callback,
            )

        # 5. Decode and keep the window's first `seconds_total` (sample 0 is `seconds_start`;
        # diffusers' own pipeline cuts `[start, end]` out of the window instead, which runs past
        # the piece's end for any start > 0)
        waveforms = self.pipeline.vae.decode(latents).sample
        waveforms = waveforms[:, :, :num_samples]
        audios = np.clip(waveforms.float().cpu().numpy(), -1.0, 1.0).astype(np.float32)

        # 6. Display spectrograms and output
        images = [mel_image(waveform, self.sample_rate) for waveform in audios]
        output = GeneratedAudio(audios=audios, sample_rate=self.sample_rate, images=images)
        if not return_dict:
            return output.to_tuple()
        return output

    def prepare_init_waveform(
        self,
        audio: np.ndarray,
        audio_sampling_rate: int,
        num_samples: int,
    ) -> torch.Tensor:
        """Init audio as the model's input: `[1, channels, window_length]` at `sample_rate`.

        The audio is resampled, mixed to the model's channel count (mono is copied to every
        channel; any other count is averaged to mono first), cut to `num_samples` and placed at
        the start of an otherwise silent window.
        """
        # The one intake of music/audio.py (checks, mixdown, resampling; it warns on silence).
        audio = prepare_audio_channels(audio, audio_sampling_rate, self.sample_rate, self.channels)
        audio = audio[:, :num_samples]
        window = np.zeros((self.channels, self.window_length), dtype=np.float32)
        window[:, : audio.shape[1]] = audio
        vae = self.pipeline.vae
        return torch.from_numpy(window)[np.newaxis].to(device=self.device, dtype=vae.dtype)

    def denoise_from_noise(
        self,
        prompts: list[str],
        negative_prompts: list[str] | None,
        seconds_start: float,
        seconds_end: float,
        num_inference_steps: int,
        guidance_scale: float,
        num_waveforms_per_prompt: int,
        generator: torch.Generator | None,
        progress_callback: Callable[[int, int], None] | None,
    ) -> torch.Tensor:
        """Text-to-audio latents `[batch, latent_channels, sample_size]` from diffusers."""

        def report_step(step_index: int, timestep: torch.Tensor, latents: torch.Tensor) -> None:
            if progress_callback is not None:
                progress_callback(step_index + 1, num_inference_steps)

        return self.pipeline(
            prompt=prompts,
            negative_prompt=negative_prompts,
            audio_start_in_s=seconds_start,
            audio_end_in_s=seconds_end,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            num_waveforms_per_prompt=num_waveforms_per_prompt,
            generator=generator,
            callback=report_step,
            callback_steps=1,
            output_type="latent",
        ).audios

    def denoise_from_audio(
        self,
        init_waveform: torch.Tensor,
        strength: float,
        prompts: list[str],
        negative_prompts: list[str] | None,
        seconds_start: float,
        seconds_end: float,
        num_inference_steps: int,
        guidance_scale: float,
        num_waveforms_per_prompt: int,
        generator: torch.Generator | None,
        progress_callback: Callable[[int, int], None] | None,
    ) -> torch.Tensor:
        """Audio-to-audio latents: noise the init audio's latents to the sigma `strength` picks and
        denoise from there.

        diffusers' own path (`initial_audio_waveforms`) adds the init latents to noise of sigma
        ~500, so the input barely shows in the output whatever one does
        (https://github.com/huggingface/diffusers/issues/10861); this is the image-to-image recipe
        instead, with the pipeline's helpers and its denoising loop.
        """
        pipeline, scheduler = self.pipeline, self.pipeline.scheduler
        device = self.device
        batch_size = len(prompts) * num_waveforms_per_prompt
        do_classifier_free_guidance = guidance_scale > 1.0

        # 1. Prepare timesteps: the last `floor(strength * steps)` steps of the full schedule
        scheduler.set_timesteps(num_inference_steps, device=device)
        # The epsilon keeps e.g. 0.29 * 100 = 28.999999999999996 at 29 steps.
        num_denoising_steps = min(
            math.floor(strength * num_inference_steps + 1e-9), num_inference_steps
        )
        start_index = num_inference_steps - num_denoising_steps
        timesteps = scheduler.timesteps[start_index:]
        scheduler.set_begin_index(start_index)

        # 2. Encode the init audio (unused from the very first step); the posterior mean keeps
        # strength 0 deterministic
        if start_index > 0:
            init_latents = pipeline.vae.encode(init_waveform).latent_dist.mode()
        if num_denoising_steps == 0:
            return init_latents.repeat(batch_size, 1, 1)

        # 3. Encode prompts and timing
        text_audio_duration_embeds, audio_duration_embeds = self.encode_conditioning(
            prompts,
            negative_prompts,
            seconds_start,
            seconds_end,
            do_classifier_free_guidance,
            num_waveforms_per_prompt,
        )

        # 4. Noise the init latents to the start sigma. The scheduler is k-diffusion style
        # (variance exploding): a sample at sigma is `x + sigma * noise`, unscaled, and only
        # `scale_model_input` divides by sqrt(sigma**2 + sigma_data**2) for the transformer; that
        # is what `add_noise` computes. From the very first step the input is ignored and the
        # noise scaled by `init_noise_sigma` as text-to-audio does, so strength 1 equals it. The
        # noise is drawn exactly as `StableAudioPipeline.prepare_latents` draws it.
        latent_shape = (
            batch_size,
            pipeline.transformer.config.in_channels,
            pipeline.transformer.config.sample_size,
        )
        noise = randn_tensor(
            latent_shape, generator=generator, device=device, dtype=text_audio_duration_embeds.dtype
        )
        if start_index == 0:
            latents = noise * scheduler.init_noise_sigma
        else:
            latents = scheduler.add_noise(
                init_latents.to(noise.dtype).repeat(batch_size, 1, 1), noise, timesteps[:1]
            )

        # 5. Prepare extra step kwargs and the rotary positional embedding
        extra_step_kwargs = pipeline.prepare_extra_step_kwargs(generator, eta=0.0)
        rotary_embedding = get_1d_rotary_pos_embed(
            pipeline.rotary_embed_dim,
            latents.shape[2] + audio_duration_embeds.shape[1],
            use_real=True,
            repeat_interleave_real=False,
        )

        # 6. Denoising loop (as `StableAudioPipeline.__call__`'s)
        for step, timestep in enumerate(timesteps):
            model_input = torch.cat([latents] * 2) if do_classifier_free_guidance else latents
            model_input = scheduler.scale_model_input(model_input, timestep)
            model_output = pipeline.transformer(
                model_input,
                timestep.unsqueeze(0),
                encoder_hidden_states=text_audio_duration_embeds,
                global_hidden_states=audio_duration_embeds,
                rotary_embedding=rotary_embedding,
                return_dict=False,
            )[0]
            if do_classifier_free_guidance:
                output_uncond, output_text = model_output.chunk(2)
                model_output = output_uncond + guidance_scale * (output_text - output_uncond)
            latents = scheduler.step(
                model_output, timestep, latents, **extra_step_kwargs
            ).prev_sample
            if progress_callback is not None:
                progress_callback(step + 1, num_denoising_steps)
        return latents

    def encode_conditioning(
        self,
        prompts: list[str],
        negative_prompts: list[str] | None,
        seconds_start: float,
        seconds_end: float,
        do_classifier_free_guidance: bool,
        num_waveforms_per_prompt: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The transformer's cross-attention and global conditioning, as `StableAudioPipeline`
        builds them: unconditional rows first when guiding, each prompt repeated per waveform."""
        pipeline, device = self.pipeline, self.device
        prompt_embeds = pipeline.encode_prompt(
            prompts, device, do_classifier_free_guidance, negative_prompts
        )
        seconds_start_states, seconds_end_states = pipeline.encode_duration(
            seconds_start,
            seconds_end,
            device,
            do_classifier_free_guidance and negative_prompts is not None,
            len(prompts),
        )
        text_audio_duration_embeds = torch.cat(
            [prompt_embeds, seconds_start_states, seconds_end_states], dim=1
        )
        audio_duration_embeds = torch.cat([seconds_start_states, seconds_end_states], dim=2)
        if do_classifier_free_guidance and negative_prompts is None:
            text_audio_duration_embeds = torch.cat(
                [torch.zeros_like(text_audio_duration_embeds), text_audio_duration_embeds]
            )
            audio_duration_embeds = torch.cat([audio_duration_embeds, audio_duration_embeds])
        return (
            text_audio_duration_embeds.repeat_interleave(num_waveforms_per_prompt, dim=0),
            audio_duration_embeds.repeat_interleave(num_waveforms_per_prompt, dim=0),
        )


def _is_real(value: object) -> bool:
    """A finite real number (bools excluded)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    ) and math.isfinite(value)


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


__all__ = ["DEFAULT_MODEL_ID", "ModelUnavailableError", "StableAudioOpenPipeline", "mel_image"]
