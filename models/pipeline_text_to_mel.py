"""Text + timing conditioned mel diffusion, Stable Audio style: variable-length audio from a prompt.

A `UNet2DConditionModel` cross-attends to the prompt's text-encoder hidden states followed by two
timing tokens, `seconds_start` and `seconds_total` embedded with learned Fourier features
(diffusers' `StableAudioProjectionModel`); the two timing embeddings are also added to the timestep
embedding (`class_embed_type="projection"`). The model learns where a piece ends, so one model makes
clips of any length up to its window; the output is trimmed to exactly the asked duration and
longer durations are generated as continued windows. An optional `key_embedding` (`models/key_embedding.py`)
conditions on the key the prompt names in the same two ways: a third token and a vector added to the timing
vector.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.pipelines.stable_audio.modeling_stable_audio import StableAudioProjectionModel
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from models.key_embedding import NO_KEY, KeyEmbedding, key_index
from models.mel import Mel
from models.model_index import read_model_index
from models.outputs import GeneratedAudio
from models.pipeline_base import MelPipelineBase, NoisePredictor, ProgressCallback, WindowCall
from models.schedulers import check_guidance_interval, noise_sigma
from models.text_encoder import DEFAULT_TEXT_ENCODER, encode_text, load_text_encoder, pool_text
from models.vocoder import MelVocoder
from music.key import Key, key_from_prompt, parse_key


@dataclass
class TextConditioning:
    """What a text call conditions every window on (`WindowCall.conditioning`).

    Attributes:
        text, negative_text: projected prompt states `[prompts, tokens, dim]` and masks (`encode_prompt`),
            one row per prompt; None for the negative without guidance.
        seconds_start: where the output starts in the piece, in seconds (at the reference tempo).
        piece_seconds: the piece's total duration, in seconds (at the reference tempo).
        guidance_scale: classifier-free guidance; <= 1 disables it.
        guidance_interval: `(sigma_lo, sigma_hi)`, the noise levels (sigma, see `check_guidance_interval`)
            at which guidance is applied; None: at every step.
        key_classes: `[prompts]` key class of each prompt (`models.key_embedding.key_index`); None for
            pipelines without a key embedding.
    """

    text: tuple[torch.Tensor, torch.Tensor]
    negative_text: tuple[torch.Tensor, torch.Tensor] | None
    seconds_start: float
    piece_seconds: float
    guidance_scale: float
    guidance_interval: tuple[float, float] | None = None
    key_classes: torch.Tensor | None = None


class TextToMelPipeline(MelPipelineBase):
    """Generate audio from text with a text + timing conditioned mel diffusion model.

    Components: `unet` (`UNet2DConditionModel`), `scheduler`, `mel` (`Mel`), `projection_model`
    (`StableAudioProjectionModel`: text projection and timing embedders), `text_encoder` and
    `tokenizer` (transformers), optional `vae` (`AutoencoderKL`) for latent models, optional `vocoder`
    (`MelVocoder`, HiFi-GAN; Griffin-Lim without) and optional `key_embedding` (`KeyEmbedding`: the key the
    prompt names, or the call's `key`, as a token and a timestep-embedding vector; without it the key is
    only in the caption's words).

    The text encoder is not saved with the pipeline by default (it is a public model of its own):
    `text_encoder_name_or_path` in `model_index.json` names it and `from_pretrained` loads it.
    With `text_pooling="mean"` the prompt is one token, the encoder's pooled sentence embedding.
    `max_window_start_s` is the latest window start the model was trained on: continued windows
    beyond it are conditioned as starting there (inside a piece, not past what the model has seen).
    `guidance_interval` is the default `(sigma_lo, sigma_hi)` of the noise levels at which classifier-free
    guidance is applied (see `check_guidance_interval`; None: every step); outside it a step runs the
    conditional branch alone, half the UNet work of a guided step.
    Tempo-normalised models (`reference_bpm` set) generate at that tempo and are stretched to `bpm`.
    `default_num_inference_steps`: the checkpoint's own step count, the default of every call and of the
    studio's "model default" (None: the class's 20).
    """

    is_text_conditioned = True
    default_num_inference_steps = 20
    default_guidance_scale = 3.0
    _optional_components: ClassVar[list[str]] = ["vae", "vocoder", "text_encoder", "tokenizer", "key_embedding"]

    def __init__(
        self,
        unet: UNet2DConditionModel,
        scheduler: SchedulerMixin,
        mel: Mel,
        projection_model: StableAudioProjectionModel,
        text_encoder: PreTrainedModel | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        vae: AutoencoderKL | None = None,
        text_encoder_name_or_path: str = DEFAULT_TEXT_ENCODER,
        max_text_length: int = 64,
        text_pooling: str | None = None,
        reference_bpm: float | None = None,
        beats_per_bar: int = 4,
        max_window_start_s: float | None = None,
        vocoder: MelVocoder | None = None,
        guidance_interval: Sequence[float] | None = None,
        key_embedding: KeyEmbedding | None = None,
        default_num_inference_steps: int | None = None,
    ):
        super().__init__()
        self.register_modules(
            unet=unet, scheduler=scheduler, mel=mel, projection_model=projection_model,
            text_encoder=text_encoder, tokenizer=tokenizer, vae=vae, vocoder=vocoder, key_embedding=key_embedding,
        )
        self.check_vocoder()
        if text_pooling not in (None, "mean"):
            raise ValueError(f"text_pooling must be None or 'mean', got {text_pooling!r}.")
        guidance_interval = check_guidance_interval(guidance_interval)
        self.register_to_config(text_encoder_name_or_path=text_encoder_name_or_path, max_text_length=max_text_length,
                                text_pooling=text_pooling, reference_bpm=reference_bpm, beats_per_bar=beats_per_bar,
                                max_window_start_s=max_window_start_s,
                                guidance_interval=None if guidance_interval is None else list(guidance_interval))
        self.set_default_steps(default_num_inference_steps)

    # ---- saving and loading ----------------------------------------------------------------

    def save_pretrained(self, save_directory: str | Path, include_text_encoder: bool = False, **kwargs) -> None:
        """Save the pipeline; the text encoder only when `include_text_encoder` (it is loaded by name otherwise)."""
        if include_text_encoder:
            return super().save_pretrained(save_directory, **kwargs)
        text_encoder, tokenizer = self.text_encoder, self.tokenizer
        self.register_modules(text_encoder=None, tokenizer=None)
        try:
            super().save_pretrained(save_directory, **kwargs)
        finally:
            self.register_modules(text_encoder=text_encoder, tokenizer=tokenizer)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **kwargs) -> TextToMelPipeline:
        """Load a saved pipeline; a text encoder saved without it is loaded by `text_encoder_name_or_path`."""
        if "text_encoder" not in kwargs:
            index = read_model_index(pretrained_model_name_or_path, kwargs.get("revision"), kwargs.get("token"),
                                     kwargs.get("cache_dir"))
            if index.get("text_encoder", [None])[0] is None:
                tokenizer, text_encoder = load_text_encoder(
                    index.get("text_encoder_name_or_path", DEFAULT_TEXT_ENCODER)
                )
                kwargs.update(text_encoder=text_encoder, tokenizer=tokenizer)
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    # ---- conditioning ----------------------------------------------------------------------

    @property
    def max_seconds_total(self) -> float:
        """Largest `seconds_start + seconds_total` the timing embedders distinguish, in seconds."""
        return float(self.projection_model.config.max_value)

    def encode_prompt(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected text hidden states `[batch, tokens, dim]` and their attention mask `[batch, tokens]`."""
        if self.text_encoder is None or self.tokenizer is None:
            raise ValueError("This pipeline has no text encoder; load it with TextToMelPipeline.from_pretrained.")
        hidden, mask = encode_text(self.tokenizer, self.text_encoder, prompts, self.config.max_text_length)
        if self.config.get("text_pooling") == "mean":
            hidden, mask = pool_text(hidden, mask)
        hidden = self.projection_model(text_hidden_states=hidden.to(self.projection_model.dtype)).text_hidden_states
        return hidden.to(self.device), mask.to(self.device)

    def encode_duration(
        self, seconds_start: torch.Tensor, seconds_total: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Timing tokens `[batch, 2, dim]` and the global timing vector `[batch, 2 * dim]` (both in seconds)."""
        dtype = self.projection_model.dtype
        output = self.projection_model(
            start_seconds=seconds_start.to(self.device, dtype), end_seconds=seconds_total.to(self.device, dtype)
        )
        tokens = torch.cat([output.seconds_start_hidden_states, output.seconds_end_hidden_states], dim=1)
        return tokens, tokens.flatten(1)

    def prompt_key_classes(self, prompts: list[str], key: str | Key | None = None) -> torch.Tensor | None:
        """Key class of each prompt `[prompts]` (`models.key_embedding.key_index`), or None without a key embedding.

        Args:
            key: the key for every prompt ("B minor", a `Key`, or "none" for no key); None: the key each
                prompt names (`music.key.key_from_prompt`), "none" where it names none.
        Raises:
            ValueError: `key` is not a key name.
        """
        if key is None:
            keys = [key_from_prompt(prompt) for prompt in prompts]
        elif isinstance(key, Key):
            keys = [key] * len(prompts)
        elif isinstance(key, str) and key.strip().lower() == "none":
            keys = [None] * len(prompts)
        else:
            keys = [parse_key(key)] * len(prompts)
        if self.key_embedding is None:
            return None
        return torch.tensor([key_index(named) for named in keys], dtype=torch.long)

    def unet_conditioning(
        self, text_hidden: torch.Tensor, text_mask: torch.Tensor, seconds_start: torch.Tensor,
        seconds_total: torch.Tensor, key_classes: torch.Tensor | None = None,
    ) -> dict:
        """The UNet's conditioning keyword arguments (used by inference and by training alike).

        Args:
            text_hidden, text_mask: projected prompt states `[batch, tokens, dim]` and mask `[batch, tokens]`
                (from `encode_prompt`).
            seconds_start: `[batch]` where each window starts in its piece, in seconds.
            seconds_total: `[batch]` the piece's total duration, in seconds.
            key_classes: `[batch]` key class of each item (`key_index`; None: no key named). Used only by a
                pipeline with a `key_embedding`.
        Returns:
            `encoder_hidden_states` (text tokens, the two timing tokens, then the key token when there is a key
            embedding with `token_mode="append"`; with "add_to_text" it is added to the text tokens),
            `encoder_attention_mask` (the key token masked out where no key is named) and
            `class_labels` (the timing embeddings plus the key vector, added to the timestep embedding).
        """
        timing_tokens, timing_vector = self.encode_duration(seconds_start, seconds_total)
        timing_mask = torch.ones(timing_tokens.shape[:2], dtype=text_mask.dtype, device=text_mask.device)
        tokens = [text_hidden, timing_tokens.to(text_hidden.device)]
        masks = [text_mask, timing_mask]
        if self.key_embedding is not None:
            if key_classes is None:
                key_classes = torch.full((len(seconds_start),), NO_KEY, dtype=torch.long)
            key_token, key_mask, key_vector = self.key_embedding(key_classes.to(self.key_embedding.device))
            key_token = key_token.to(text_hidden.device, text_hidden.dtype)
            if self.key_embedding.config.token_mode == "append":
                tokens.append(key_token)
                masks.append(key_mask.to(text_mask.device, text_mask.dtype))
            else:  # "add_to_text"
                tokens[0] = text_hidden + key_token * key_mask.to(key_token.device, key_token.dtype)[:, :, None]
            timing_vector = timing_vector + key_vector.to(timing_vector.device, timing_vector.dtype)
        return {
            "encoder_hidden_states": torch.cat(tokens, dim=1).to(self.unet.dtype),
            "encoder_attention_mask": torch.cat(masks, dim=1),
            "class_labels": timing_vector.to(self.unet.dtype) if self.unet.config.class_embed_type else None,
        }

    def make_noise_predictor(
        self,
        text: tuple[torch.Tensor, torch.Tensor],
        negative_text: tuple[torch.Tensor, torch.Tensor] | None,
        seconds_start: torch.Tensor,
        seconds_total: torch.Tensor,
        guidance_scale: float,
        guidance_interval: tuple[float, float] | None = None,
        key_classes: torch.Tensor | None = None,
    ):
        """A `(latents, timestep) -> noise` function with classifier-free guidance for this conditioning.

        `text`/`negative_text` are per item (`[batch, tokens, dim]`, mask `[batch, tokens]`); the
        timing tokens are the same for the conditional and the unconditional branch, as in Stable Audio.
        `key_classes` `[batch]` condition the conditional branch; the unconditional branch names no key
        (it is dropped with the caption in training).
        With `guidance_interval` `(sigma_lo, sigma_hi)`, only steps whose noise level sigma is in
        `(sigma_lo, sigma_hi]` are guided; the others run the conditional branch alone.
        """
        conditional = self.unet_conditioning(*text, seconds_start, seconds_total, key_classes)

        def predict_conditional(latents: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
            return self.unet(latents, timestep, **conditional).sample

        if negative_text is None or guidance_scale <= 1.0:
            return predict_conditional
        unconditional = self.unet_conditioning(*negative_text, seconds_start, seconds_total)
        both = {key: None if value is None else torch.cat([unconditional[key], value])
                for key, value in conditional.items()}

        def predict(latents: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
            if guidance_interval is not None:
                low, high = guidance_interval
                if not low < noise_sigma(self.scheduler, timestep) <= high:
                    return predict_conditional(latents, timestep)
            noise_uncond, noise_text = self.unet(torch.cat([latents, latents]), timestep, **both).sample.chunk(2)
            return self.combine_guidance(latents, timestep, noise_uncond, noise_text, guidance_scale)

        return predict

    def combine_guidance(self, latents: torch.Tensor, timestep: torch.Tensor, noise_uncond: torch.Tensor,
                         noise_text: torch.Tensor, guidance_scale: float) -> torch.Tensor:
        """One guided step's prediction from its unconditional and conditional ones: classifier-free guidance.
        (`benchmarks/check_guidance_variants.py` overrides it to measure other rules, e.g. APG.)"""
        return noise_uncond + guidance_scale * (noise_text - noise_uncond)

    def noise_predictor(self, call: WindowCall, first_frames: torch.Tensor) -> NoisePredictor:
        """Guided noise prediction for windows starting `first_frames` frames into the output: each
        window is told where it starts in the piece (capped at `max_window_start_s`, the latest start
        the model was trained on) and how long the piece is."""
        conditioning: TextConditioning = call.conditioning
        batch = len(first_frames)
        seconds_per_frame = self.mel.config.hop_length / self.sample_rate
        window_start = conditioning.seconds_start + first_frames.float() * seconds_per_frame
        latest_start = self.config.get("max_window_start_s")
        if latest_start is not None:
            window_start = window_start.clamp(max=float(latest_start))
        negative = conditioning.negative_text
        key_classes = conditioning.key_classes
        if key_classes is not None:
            key_classes = key_classes.repeat_interleave(batch // len(key_classes), 0)
        return self.make_noise_predictor(
            _per_item(conditioning.text, batch), None if negative is None else _per_item(negative, batch),
            window_start, torch.full((batch,), conditioning.piece_seconds), conditioning.guidance_scale,
            conditioning.guidance_interval, key_classes,
        )

    # ---- checks ----------------------------------------------------------------------------

    def check_inputs(
        self,
        prompts: list[str],
        negative_prompts: list[str] | None,
        seconds_start: float,
        seconds_total: float,
        guidance_scale: float,
        num_waveforms_per_prompt: int,
    ) -> None:
        """Raise `ValueError` naming the offending argument and its allowed range."""
        if not prompts or not all(isinstance(prompt, str) for prompt in prompts):
            raise ValueError(f"prompt must be a string or a non-empty list of strings, got {prompts!r}.")
        if negative_prompts is not None and len(negative_prompts) not in (1, len(prompts)):
            raise ValueError(f"Got {len(negative_prompts)} negative prompts for {len(prompts)} prompts.")
        if not np.isfinite(seconds_total) or not 0 < seconds_total <= self.max_audio_length_in_s:
            raise ValueError(f"seconds_total must be in (0, {self.max_audio_length_in_s}] s, got {seconds_total!r}.")
        if not np.isfinite(seconds_start) or not 0 <= seconds_start <= self.max_seconds_total:
            raise ValueError(f"seconds_start must be in [0, {self.max_seconds_total}] s, got {seconds_start!r}.")
        if not np.isfinite(guidance_scale) or not 0 <= guidance_scale <= 30:
            raise ValueError(f"guidance_scale must be in [0, 30], got {guidance_scale!r}.")
        if not isinstance(num_waveforms_per_prompt, int) or num_waveforms_per_prompt < 1:
            raise ValueError(f"num_waveforms_per_prompt must be a positive integer, got {num_waveforms_per_prompt!r}.")

    def check_timing(self, piece_seconds: float, tempo_ratio: float = 1.0) -> None:
        """Refuse a piece longer than the timing embedders represent (they clamp larger values, so
        every later window would be conditioned as the end of the piece), as diffusers'
        `StableAudioPipeline` refuses an `audio_end_in_s` above its projection's `max_value`.

        Args:
            piece_seconds: `seconds_start + seconds_total` in seconds at the reference tempo.
            tempo_ratio: reference-tempo seconds per output second (1 without a `bpm`).
        """
        if piece_seconds > self.max_seconds_total + 1e-6:
            raise ValueError(
                f"seconds_start + seconds_total must be at most {self.max_seconds_total / tempo_ratio:.2f} s "
                f"for this model (its timing conditioning represents pieces up to {self.max_seconds_total:g} s"
                f"{' at its reference tempo' if tempo_ratio != 1.0 else ''}), got "
                f"{piece_seconds / tempo_ratio:.2f} s."
            )

    # ---- generation ------------------------------------------------------------------------

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str],
        negative_prompt: str | list[str] | None = None,
        seconds_start: float = 0.0,
        seconds_total: float | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        num_waveforms_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        audio: np.ndarray | torch.Tensor | None = None,
        audio_sampling_rate: int | None = None,
        strength: float = 1.0,
        keep_regions_in_s: Sequence[tuple[float, float]] | None = None,
        extend_in_s: float | None = None,
        overlap_in_s: float | None = None,
        eta: float = 0.0,
        bpm: float | None = None,
        progress_callback: ProgressCallback | None = None,
        scheduler: str | None = None,
        guidance_interval: Sequence[float] | None = None,
        key: str | Key | None = None,
        return_dict: bool = True,
    ) -> GeneratedAudio | tuple:
        """Generate `num_waveforms_per_prompt` clips per prompt.

        Args:
            prompt: what to generate, e.g. "house drum loop, 124 BPM".
            negative_prompt: what to steer away from (the unconditional branch of guidance).
            seconds_start: where the clip starts inside the imagined piece, in seconds.
            seconds_total: output duration in seconds (default: one window). The model is told the
                piece lasts `seconds_start + seconds_total` seconds (at most `max_seconds_total`,
                what its timing embedders represent); the output is exactly `seconds_total`
                seconds long. Durations longer than a window are continued windows.
            num_inference_steps: denoising steps per window.
            guidance_scale: classifier-free guidance; <= 1 disables it.
            guidance_interval: `(sigma_lo, sigma_hi)`: apply guidance only at steps whose noise level sigma
                (dimensionless, see `check_guidance_interval`) is in `(sigma_lo, sigma_hi]`, the conditional
                branch alone elsewhere (about half the UNet work per unguided step). None: the pipeline's
                `guidance_interval` config (None there: every step); `(0, inf)` guides every step.
            audio, audio_sampling_rate, strength, keep_regions_in_s, extend_in_s, overlap_in_s, eta,
            progress_callback, scheduler: as in `MelDiffusionPipeline.__call__` (audio-to-audio with a prompt).
                With `audio`, the output is as long as the input (plus `extend_in_s`): leave
                `seconds_total` unset.
            bpm: tempo of the output in BPM, for tempo-normalised models: the clip is generated at
                `reference_bpm` (timing conditioning in seconds at that tempo) and time-stretched to
                exactly `seconds_total` seconds at `bpm` (None: the reference tempo).
            key: for pipelines with a `key_embedding`, the key to condition on ("B minor", a `music.key.Key`, or
                "none"); None: the key each prompt names ("funk band in F minor" -> F minor), none where it names
                none. Pipelines without a key embedding check it and otherwise read the key from the prompt's words.
        Returns:
            `GeneratedAudio` with `audios` `[prompts * num_waveforms_per_prompt, 1, samples]`.
        """
        # 1. Check inputs
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        negative_prompts = [negative_prompt] if isinstance(negative_prompt, str) else negative_prompt
        num_inference_steps = self.default_num_inference_steps if num_inference_steps is None else num_inference_steps
        guidance_scale = self.default_guidance_scale if guidance_scale is None else guidance_scale
        guidance_interval = check_guidance_interval(
            self.config.get("guidance_interval") if guidance_interval is None else guidance_interval)
        overlap_in_s = self.default_overlap_in_s if overlap_in_s is None else overlap_in_s
        seconds_total = float(seconds_total) if seconds_total is not None else None
        batch_size = len(prompts) * num_waveforms_per_prompt
        self.check_inputs(prompts, negative_prompts, seconds_start,
                          self.window_seconds if seconds_total is None else seconds_total,
                          guidance_scale, num_waveforms_per_prompt)
        self.check_common_inputs(
            num_inference_steps, strength, batch_size, audio, keep_regions_in_s, extend_in_s, overlap_in_s
        )
        self.check_bpm(bpm, audio)
        if audio is not None and seconds_total is not None:
            raise ValueError("seconds_total is the output duration; with audio the output is as long as the "
                             "input (plus extend_in_s), so leave seconds_total unset.")

        # 2. Define call parameters (timing in seconds at the reference tempo when there is one)
        original = None if audio is None else self.prepare_input_audio(audio, audio_sampling_rate)
        if original is None:
            seconds_total = self.window_seconds if seconds_total is None else seconds_total
            output_samples = round(seconds_total * self.sample_rate)
            num_samples = self.samples_at_reference(output_samples, bpm)
            tempo_ratio = num_samples / output_samples
            seconds_start, seconds_total = seconds_start * tempo_ratio, num_samples / self.sample_rate
        else:
            num_samples = output_samples = len(original) + round((extend_in_s or 0.0) * self.sample_rate)
            seconds_total = num_samples / self.sample_rate
        piece_seconds = seconds_start + seconds_total
        self.check_timing(piece_seconds, tempo_ratio=num_samples / output_samples)
        phase_seeds = self.phase_seeds(generator, batch_size)

        key_classes = self.prompt_key_classes(prompts, key)

        # 3. Encode input prompt (and the negative prompt for guidance)
        text = self.encode_prompt(prompts)
        negative_text = self.encode_prompt(negative_prompts or [""]) if guidance_scale > 1.0 else None

        # 4. Denoise every window with its own timing (the window's start in the piece) and the prompt's key
        conditioning = TextConditioning(text, negative_text, seconds_start, piece_seconds, guidance_scale,
                                        guidance_interval, key_classes)
        call = WindowCall(batch_size, num_inference_steps, generator, eta, conditioning,
                          scheduler=self.scheduler_for(scheduler))
        frames = self.generate_frames(call, num_samples, original, strength, keep_regions_in_s, bool(extend_in_s),
                                      overlap_in_s, progress_callback)

        # 5. Mel -> audio, trimmed to exactly num_samples; original put back where kept
        output = self.frames_to_output(frames, num_samples, original, keep_regions_in_s, bool(extend_in_s),
                                       overlap_in_s, phase_seeds)

        # 6. From the reference tempo to the asked one, exactly output_samples long
        self.stretch_output(output, output_samples)
        return output if return_dict else output.to_tuple()


def _per_item(encoded: tuple[torch.Tensor, torch.Tensor], batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Expand prompt encodings `[prompts, ...]` to `batch` items (prompt-major, then waveforms, then windows)."""
    hidden, mask = encoded
    repeat = batch // hidden.shape[0]
    return hidden.repeat_interleave(repeat, 0), mask.repeat_interleave(repeat, 0)
