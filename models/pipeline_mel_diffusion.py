"""Unconditional mel-spectrogram diffusion (audio-diffusion): loops and breaks, variations, in/outpainting, continuation.

Audio is a mel "image" (see `models/mel.py`); a `UNet2DModel` denoises it, in pixel space or in the
latent space of an optional `AutoencoderKL`; Griffin-Lim turns it back into audio at `sample_rate` Hz.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from diffusers import AutoencoderKL, UNet2DModel
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from models.mel import Mel
from models.outputs import GeneratedAudio
from models.pipeline_base import MelPipelineBase, ProgressCallback


class MelDiffusionPipeline(MelPipelineBase):
    """Generate audio with an unconditional mel diffusion model.

    Components: `unet` (`UNet2DModel`), `scheduler` (any diffusers scheduler), `mel` (`Mel`) and,
    for latent models, `vae` (`AutoencoderKL`).
    """

    is_text_conditioned = False
    default_num_inference_steps = 20
    model_cpu_offload_seq = "unet->vae"

    def __init__(
        self,
        unet: UNet2DModel,
        scheduler: SchedulerMixin,
        mel: Mel,
        vae: AutoencoderKL | None = None,
    ):
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler, mel=mel, vae=vae)

    def predict_noise(self, latents: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        return self.unet(latents, timestep).sample

    def sample_windows(
        self,
        batch: int,
        num_inference_steps: int,
        generator,
        init_images: torch.Tensor | None = None,
        strength: float = 1.0,
        keep_mask: torch.Tensor | None = None,
        eta: float = 0.0,
        on_step=None,
    ) -> torch.Tensor:
        """Denoise `batch` windows (from `init_images` where given) and return images in [-1, 1]."""
        init_latents = None if init_images is None else self.encode_images(init_images)
        latents = self.denoise(
            self.predict_noise, self.latent_shape(batch), num_inference_steps, generator,
            init_latents=init_latents, strength=strength, keep_mask=keep_mask, eta=eta, on_step=on_step,
        )
        return self.decode_latents(latents)

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
        progress_callback: ProgressCallback | None = None,
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
                (default: a quarter of a window).
            eta: DDIM's eta (0 = deterministic sampling).
            progress_callback: called as `(steps_done, steps_total)` after each denoising step.
        Returns:
            `GeneratedAudio` with `audios` `[batch_size, 1, samples]` at `sample_rate` Hz.
        """
        # 1. Check inputs
        num_inference_steps = num_inference_steps or self.default_num_inference_steps
        overlap_in_s = overlap_in_s or self.window_seconds / 4
        self.check_common_inputs(
            num_inference_steps, strength, batch_size, audio, keep_regions_in_s, extend_in_s, overlap_in_s
        )
        if audio_length_in_s is not None and not 0 < audio_length_in_s <= self.max_audio_length_in_s:
            raise ValueError(
                f"audio_length_in_s must be in (0, {self.max_audio_length_in_s}] s, got {audio_length_in_s!r}."
            )

        # 2. Define call parameters: input audio as mel windows, output length, step count
        hop = self.mel.config.hop_length
        overlap_frames = max(1, round(overlap_in_s * self.sample_rate / hop))
        original = None if audio is None else self.prepare_input_audio(audio, audio_sampling_rate)
        if original is not None:
            num_samples = len(original) + round((extend_in_s or 0.0) * self.sample_rate)
        else:
            num_samples = round((audio_length_in_s or self.window_seconds) * self.sample_rate)
        total_frames = self.mel.frames_for_samples(num_samples)
        steps_done, steps_total = 0, self.count_steps(original, total_frames, overlap_frames, num_inference_steps,
                                                      strength, extend_in_s)

        def on_step() -> None:
            nonlocal steps_done
            steps_done += 1
            if progress_callback is not None:
                progress_callback(steps_done, steps_total)

        with self.progress_bar(total=steps_total) as bar:
            step = lambda: (on_step(), bar.update())  # noqa: E731

            # 3. First frames: the input's windows (varied or in/outpainted), or one generated window
            if original is None or extend_in_s:
                windows, peak_db = None, None
            else:
                windows, peak_db = self.audio_to_windows(original)
            if windows is not None:
                num_windows = windows.shape[0]
                keep_mask = None
                if keep_regions_in_s:
                    keep_mask = self.keep_mask_for_windows(keep_regions_in_s, num_windows).repeat(batch_size, 1, 1, 1)
                images = self.sample_windows(
                    batch_size * num_windows, num_inference_steps, generator, init_images=windows.repeat(batch_size, 1, 1, 1),
                    strength=strength, keep_mask=keep_mask, eta=eta,
                    on_step=step,
                )
                frames = self.windows_to_frames(images, peak_db)
            elif original is not None:
                # Continuation starts from the input's own frames.
                input_frames = self.mel.audio_to_mel_power(torch.from_numpy(original)[None].to(self.device))
                frames = input_frames[:, None].repeat(batch_size, 1, 1, 1)
            else:
                frames = self.windows_to_frames(
                    self.sample_windows(batch_size, num_inference_steps, generator, eta=eta, on_step=step)
                )

            # 4. Grow window by window to the asked length (continuation / long clips)
            if frames.shape[-1] < total_frames:
                frames = self.extend_frames(
                    frames, total_frames - frames.shape[-1], overlap_frames,
                    lambda init, keep, first_frame: self.sample_windows(
                        batch_size, num_inference_steps, generator, init_images=init, strength=1.0, keep_mask=keep,
                        eta=eta, on_step=step,
                    ),
                )

        # 5. Mel -> audio (Griffin-Lim), exactly num_samples long; original audio back where kept
        audios = self.frames_to_audio(frames[..., :total_frames], num_samples)
        if original is not None and (keep_regions_in_s or extend_in_s):
            keep = self.kept_samples(num_samples, keep_regions_in_s, len(original), overlap_frames * hop)
            audios = self.splice_original(audios, original, keep, crossfade_samples=overlap_frames * hop // 2)

        # 6. Spectrogram pictures and output
        pictures = self.power_to_pictures(frames[..., :total_frames])
        if not return_dict:
            return audios, self.sample_rate, pictures
        return GeneratedAudio(audios=audios, sample_rate=self.sample_rate, images=pictures)

    def count_steps(self, original, total_frames, overlap_frames, num_inference_steps, strength, extend_in_s) -> int:
        """Denoising steps a call will run (for progress reporting)."""
        if original is not None and not extend_in_s:
            return num_inference_steps - min(num_inference_steps, round(num_inference_steps * (1 - strength)))
        have = self.mel.frames_for_samples(len(original)) if original is not None else self.window_frames
        steps = 0 if original is not None else num_inference_steps
        new_per_window = self.window_frames - overlap_frames
        windows = max(0, -(-(total_frames - have) // new_per_window))
        return steps + windows * num_inference_steps

    def kept_samples(
        self, num_samples: int, keep_regions_in_s: Sequence[tuple[float, float]] | None, input_samples: int,
        overlap_samples: int,
    ) -> np.ndarray:
        """Boolean `[num_samples]`: where the original waveform is put back."""
        keep = np.zeros(num_samples, dtype=bool)
        if keep_regions_in_s:
            for start_s, end_s in keep_regions_in_s:
                keep[round(start_s * self.sample_rate) : round(end_s * self.sample_rate)] = True
            keep[input_samples:] = False
        else:  # continuation: the input is kept up to the middle of the crossfade
            keep[: max(0, input_samples - overlap_samples // 4)] = True
        return keep
