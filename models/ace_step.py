"""ACE-Step 1.5 (diffusers' `AceStepPipeline`) behind `models.generator.AudioGenerator`:
text-to-music (instrumental: no lyrics), audio-to-audio from source audio ("cover", `strength` =
1 - `audio_cover_strength`), inpainting of one region and continuation ("repaint"), stereo 48 kHz
for the real models, 10 s to 10 min. The turbo checkpoints sample in 8 steps, guidance distilled in.
"""
from __future__ import annotations

import os

import numpy as np
import torch
from diffusers import AceStepPipeline

from models.device import pick_device, pick_dtype
from models.generator import Capabilities, GenerationRequest, GenerationResult, check_mode
from models.stable_audio_3 import load_hub_pipeline, regions_to_regenerate, step_end_progress
from music.audio import prepare_audio_channels
from music.spectrogram import mel_image
from music.tempo import BPM_RANGE

DEFAULT_MODEL_ID = "ACE-Step/acestep-v15-xl-turbo-diffusers"
MAX_SECONDS = 600.0


class AceStepBackend:
    """An `AceStepPipeline` with the project's interface.

    Attributes:
        pipeline: the wrapped diffusers pipeline.
        capabilities: what it can do (`models.generator.Capabilities`).
    """

    is_text_conditioned = True

    def __init__(self, pipeline: AceStepPipeline, name: str = "ACE-Step 1.5") -> None:
        self.pipeline = pipeline
        self.name = name
        self.sample_rate = int(pipeline.sample_rate)
        self.channels = int(pipeline.vae.config.audio_channels)
        self.max_seconds_total = MAX_SECONDS
        covers = pipeline.audio_tokenizer is not None and pipeline.audio_token_detokenizer is not None
        self.capabilities = Capabilities(
            text=True, unconditional=False, audio_to_audio=covers, inpaint=True, continuation=True,
            max_duration_s=MAX_SECONDS, max_input_s=MAX_SECONDS, sample_rate=self.sample_rate,
            channels=self.channels, default_steps=8 if pipeline.is_turbo else 50, max_steps=200,
        )

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike = DEFAULT_MODEL_ID,
        device: str | torch.device | None = None,
        torch_dtype: torch.dtype | None = None,
    ) -> AceStepBackend:
        """Load a diffusers-format ACE-Step 1.5 repo (e.g. `ACE-Step/acestep-v15-xl-turbo-diffusers`) or a
        folder saved by `AceStepPipeline.save_pretrained` (the original checkpoints need diffusers'
        conversion script first: `scripts/convert_ace_step_to_diffusers.py` in the diffusers repo).

        Raises:
            ModelUnavailableError: offline and not cached, gated, missing, or out of memory.
        """
        name = os.fspath(name_or_path)
        device = pick_device(device)
        pipeline = load_hub_pipeline(AceStepPipeline, name, device, pick_dtype(device, torch_dtype),
                                     "ACE-Step wants a GPU with about 12 GB free; free memory or use a smaller model")
        return cls(pipeline, name=name)

    def generate(self, request: GenerationRequest) -> GenerationResult:
        """See `models.generator.AudioGenerator.generate`. From scratch `duration_s` defaults to 30 s;
        `bpm` is passed to the model as its tempo metadata; a negative prompt and `seconds_start` do
        not apply. Inpainting regenerates one region: `keep_regions_in_s` must leave one gap."""
        # 1. Check inputs
        duration_s = request.duration_s
        steps = request.steps
        check_mode(self.capabilities, self.name, request)
        steps = self.capabilities.default_steps if steps is None else steps
        if not isinstance(steps, int) or not 1 <= steps <= self.capabilities.max_steps:
            raise ValueError(f"steps must be an integer in [1, {self.capabilities.max_steps}], got {steps!r}.")
        if not isinstance(request.num_outputs, int) or request.num_outputs < 1:
            raise ValueError(f"num_outputs must be a positive integer, got {request.num_outputs!r}.")
        if request.seconds_start or request.negative_prompt:
            raise ValueError(f"{self.name} takes neither seconds_start nor a negative prompt.")
        if request.audio is not None and duration_s is not None:
            raise ValueError("duration_s applies to generation from scratch; with audio the output is as long as "
                             "the input (plus extend_in_s).")
        if request.bpm is not None and not BPM_RANGE[0] <= request.bpm <= BPM_RANGE[1]:
            raise ValueError(f"bpm must be in [{BPM_RANGE[0]:g}, {BPM_RANGE[1]:g}], got {request.bpm!r}.")

        # 2. The input at the model's rate and channels, and the output length in samples
        waveform = None
        if request.audio is not None:
            waveform = prepare_audio_channels(request.audio, request.audio_sampling_rate, self.sample_rate,
                                              self.channels, MAX_SECONDS)
            num_samples = waveform.shape[-1] + round((request.extend_in_s or 0.0) * self.sample_rate)
        else:
            duration_s = 30.0 if duration_s is None else duration_s
            if not np.isfinite(duration_s) or duration_s <= 0:
                raise ValueError(f"duration_s must be a positive number of seconds, got {duration_s!r}.")
            num_samples = round(duration_s * self.sample_rate)
        if not 1 <= num_samples <= round(MAX_SECONDS * self.sample_rate):
            raise ValueError(f"The output must be at most {MAX_SECONDS:g} s for {self.name}, "
                             f"got {num_samples / self.sample_rate:.2f} s.")
        duration = (num_samples + 0.5) / self.sample_rate  # diffusers keeps int(duration * rate) samples

        # 3. Generate: text2music, cover (variation) or repaint (inpainting, continuation)
        guidance = 1.0 if request.guidance is None else float(request.guidance)
        common = {"prompt": [request.prompt or ""] * request.num_outputs, "lyrics": "", "audio_duration": duration,
                  "num_inference_steps": steps, "guidance_scale": guidance,
                  "generator": request.generator, "bpm": None if request.bpm is None else round(request.bpm),
                  "callback_on_step_end": step_end_progress(request.progress_callback, steps)}
        settings = {"backend": self.name, "steps": steps, "prompt": request.prompt, "bpm": common["bpm"],
                    "duration_s": num_samples / self.sample_rate}
        if waveform is None:
            output = self.pipeline(task_type="text2music", **common)
        else:
            padded = np.zeros((self.channels, num_samples), dtype=np.float32)
            padded[:, : waveform.shape[-1]] = waveform
            source = torch.from_numpy(padded)
            if request.keep_regions_in_s or request.extend_in_s:
                regenerated = regions_to_regenerate(request.keep_regions_in_s, waveform.shape[-1] / self.sample_rate,
                                                    num_samples / self.sample_rate)
                if len(regenerated) != 1:
                    raise ValueError(f"{self.name} regenerates one region at a time; the kept regions leave "
                                     f"{len(regenerated)}: {regenerated}.")
                (start, end), = regenerated
                output = self.pipeline(task_type="repaint", src_audio=source, repainting_start=start,
                                       repainting_end=end, **common)
                settings.update(keep_regions_in_s=request.keep_regions_in_s, extend_in_s=request.extend_in_s)
            else:
                if not 0 <= request.strength <= 1:
                    raise ValueError(f"strength must be in [0, 1], got {request.strength!r}.")
                output = self.pipeline(task_type="cover", src_audio=source, audio_cover_strength=1.0 - request.strength,
                                       **common)
                settings.update(strength=request.strength)

        # 4. Exactly num_samples, float32 in [-1, 1], with display spectrograms
        audios = output.audios.float().cpu().numpy()[..., :num_samples]
        audios = np.clip(np.pad(audios, ((0, 0), (0, 0), (0, num_samples - audios.shape[-1]))), -1, 1)
        return GenerationResult(audios=audios.astype(np.float32), sample_rate=self.sample_rate,
                                images=[mel_image(item, self.sample_rate) for item in audios], settings=settings)


__all__ = ["DEFAULT_MODEL_ID", "AceStepBackend"]
