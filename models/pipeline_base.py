"""Stages shared by the mel diffusion pipelines: mel windows in and out, the masked denoising loop, continuation.

A model sees one window of `x_res` STFT frames (`Mel.seconds_per_image` seconds). Longer input audio
is cut into windows that overlap by `overlap` frames, each denoised on its own and crossfaded (in
dB) into the previous one; longer outputs are grown window by window, each new window keeping the
last `overlap` frames of the previous one as context (outpainting) and crossfading into it.

Subclasses implement one hook, `noise_predictor(call, first_frames)`: the model's noise prediction
for a batch of windows (their conditioning). Everything else runs here, top to bottom.
"""
from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from diffusers import DiffusionPipeline, SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor

from models.floor_stage import FloorStage
from models.outputs import GeneratedAudio
from models.schedulers import make_scheduler, scheduler_name
from music.audio import prepare_audio
from music.stretch import samples_at_tempo, time_stretch
from music.take_quality import TAKE_PEAK_DBFS
from music.tempo import BPM_RANGE

# Peak of a clip generated from scratch: -1 dBFS, the peak at which the quality gate reads every clip's level.
OUTPUT_PEAK = 10 ** (TAKE_PEAK_DBFS / 20)

NoisePredictor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
ProgressCallback = Callable[[int, int], None]
Generators = torch.Generator | list[torch.Generator] | None


@dataclass
class WindowCall:
    """What one pipeline call fixes for every window it denoises.

    Attributes:
        batch_size: outputs of the call (a list `generator` has one generator per output).
        num_inference_steps: denoising steps per window.
        generator: one generator, one per output, or None.
        eta: DDIM's eta (0 = deterministic sampling).
        conditioning: whatever the subclass's `noise_predictor` needs (e.g. encoded prompts).
        on_step: called after every denoising step (progress and cancellation).
        scheduler: the sampler of this call (None: the pipeline's own); a call never changes the pipeline's.
    """

    batch_size: int
    num_inference_steps: int
    generator: Generators
    eta: float = 0.0
    conditioning: object = None
    on_step: Callable[[], None] = lambda: None
    scheduler: SchedulerMixin | None = None


class MelPipelineBase(DiffusionPipeline):
    """Components and stages common to `MelDiffusionPipeline` and `TextToMelPipeline`.

    The optional `vae` (`AutoencoderKL`) makes a latent model: diffusion runs on
    `vae.encode(mel image) * scaling_factor`, as in teticio's latent-audio-diffusion checkpoints.
    The optional `vocoder` (`MelVocoder`, HiFi-GAN) turns the mel into audio instead of Griffin-Lim;
    the `mel` must then be the one it was trained on (`check_vocoder`).
    """

    _optional_components: ClassVar[list[str]] = ["vae", "vocoder"]
    # No `model_cpu_offload_seq`: the mel front end (`Mel`) and Griffin-Lim run on `self.device`
    # between the models, which accelerate's offload hooks do not move; `enable_model_cpu_offload()`
    # therefore refuses with diffusers' own error instead of failing half-way. The models are small.
    # Longest audio accepted as input and longest audio generated, in seconds.
    max_input_length_in_s: float = 120.0
    max_audio_length_in_s: float = 120.0
    max_inference_steps: int = 1000
    # Mixed precision for the denoiser on CPU (bfloat16 roughly halves the step time where the
    # CPU supports it); None keeps the model dtype.
    cpu_autocast_dtype: torch.dtype | None = None
    # A clip from scratch at most this share longer than one window is made in one widened window instead of
    # a second whole window (overlap included) for its last few frames: the denoisers are convolutional, so a
    # window a few columns wider costs about what one window costs (`benchmarks/bench_quality.py
    # --max-window-widening` measures the takes against the two-window ones). The config entry
    # `max_window_widening` overrides it; 0 never widens.
    max_window_widening: float = 0.125
    # The checkpoint's calibrated floor stage (`models.floor_stage`, attached by `models.loading.load_pipeline`
    # from its `floor_stage.json`): applied to the mel of clips generated from scratch before decoding.
    # None (or a checkpoint without one): the mel is decoded as the model made it.
    floor_stage: FloorStage | None = None

    # ---- properties ----------------------------------------------------------------------

    @property
    def sample_rate(self) -> int:
        """Output sample rate in Hz."""
        return self.mel.config.sample_rate

    @property
    def window_frames(self) -> int:
        """Width of the model's window in STFT frames (image columns)."""
        return self.mel.config.x_res

    @property
    def window_seconds(self) -> float:
        """Length of the model's window in seconds."""
        return self.mel.seconds_per_image

    @property
    def reference_bpm(self) -> float | None:
        """The one tempo the model was trained at (tempo-normalised models), in BPM; None for others."""
        value = self.config.get("reference_bpm")
        return None if value is None else float(value)

    @property
    def beats_per_bar(self) -> int:
        return int(self.config.get("beats_per_bar") or 4)

    @property
    def bar_seconds(self) -> float | None:
        """Length of one bar at the reference tempo in seconds (None without a reference tempo)."""
        return None if self.reference_bpm is None else 60.0 / self.reference_bpm * self.beats_per_bar

    @property
    def window_width_step(self) -> int:
        """The frames a window's width grows by: one column at the denoiser's coarsest level (each down
        block but the last halves the width), times the vae's factor."""
        levels = len(self.denoiser.config.block_out_channels) - 1
        return 2**levels * self.vae_scale_factor

    @property
    def window_widening(self) -> float:
        """The share a clip may exceed one window by and still be one widened window: the config's
        `max_window_widening`, else the class's."""
        return float(self.config.get("max_window_widening", self.max_window_widening))

    def first_window_frames(self, total_frames: int) -> int:
        """Width in frames of the first window of a clip of `total_frames` frames made from scratch: one window,
        or one widened window covering the clip when it is at most `max_window_widening` longer, its width
        rounded up to `window_width_step` and still within that share (else two windows, as for longer clips)."""
        limit = self.window_frames * (1.0 + self.window_widening)
        width = math.ceil(total_frames / self.window_width_step) * self.window_width_step
        return width if self.window_frames < total_frames and width <= limit + 1e-9 else self.window_frames

    @property
    def default_overlap_in_s(self) -> float:
        """Context carried into each continued window: one bar for tempo-normalised models (so every
        window starts on a bar line, as in training), else a quarter of a window."""
        bar = self.bar_seconds
        return bar if bar is not None and bar < self.window_seconds else self.window_seconds / 4

    def check_bpm(self, bpm: float | None, audio: object) -> None:
        """Raise `ValueError` unless `bpm` is None or a tempo this model can be stretched to."""
        if bpm is None:
            return
        if self.reference_bpm is None:
            raise ValueError("bpm needs a tempo-normalised model (one with reference_bpm in its config); this one "
                             "makes its own tempo.")
        if audio is not None:
            raise ValueError("bpm applies to generation from scratch; audio-to-audio keeps the input's tempo.")
        low, high = BPM_RANGE
        if not np.isfinite(bpm) or not low <= float(bpm) <= high:
            raise ValueError(f"bpm must be in [{low:g}, {high:g}], got {bpm!r}.")

    def samples_at_reference(self, num_samples: int, bpm: float | None) -> int:
        """How many samples at the reference tempo hold the music of `num_samples` samples at `bpm`.

        `num_samples` is itself a length rounded to the sample at `bpm` (half a sample either way), so every
        reference length within that rounding holds the same music; of those, the one ending on a whole
        STFT frame is taken when there is one. Whole bars at `bpm` are then never a frame (and so a whole
        window) longer than the same bars at the reference tempo: two bars at 145 BPM used to come out at
        65,537 reference samples, one over the bundled models' 65,536-sample window, and made a second window.
        """
        if bpm is None or self.reference_bpm is None:
            return num_samples
        ratio = float(bpm) / self.reference_bpm
        nearest = samples_at_tempo(num_samples, float(bpm), self.reference_bpm)
        hop = self.mel.config.hop_length
        whole_frames = nearest // hop * hop
        shortest = math.ceil((num_samples - 0.5) * ratio)
        return whole_frames if shortest <= whole_frames < nearest else nearest

    def stretch_output(self, output: GeneratedAudio, num_samples: int) -> None:
        """Time-stretch `output.audios` to exactly `num_samples` samples (the asked tempo), keeping the takes as
        made at the reference tempo in `output.audios_before_stretch`; nothing to do when they already fit."""
        if output.audios.shape[-1] != num_samples:
            output.audios_before_stretch = output.audios
            output.audios = self.stretch_to(output.audios, num_samples)

    def stretch_to(self, audios: np.ndarray, num_samples: int) -> np.ndarray:
        """Time-stretch `[batch, 1, samples]` audio to exactly `num_samples` samples (pitch unchanged)."""
        if audios.shape[-1] == num_samples:
            return audios
        stretched = [time_stretch(item[0], self.sample_rate, num_samples) for item in audios]
        peaks = np.array([max(1e-9, float(np.abs(item).max())) for item in stretched])
        # Rubber Band can overshoot a little; keep the pipeline's 0.99 ceiling.
        return np.stack([item * min(1.0, 0.99 / peak) for item, peak in zip(stretched, peaks)])[:, None, :]

    def set_default_steps(self, steps: int | None) -> None:
        """Make `steps` denoising steps the default of every call and of the studio's "model default", saved as
        `default_num_inference_steps` in `model_index.json` (a checkpoint's own choice, measured for it); None
        keeps the class's. Raises `ValueError` outside 1..`max_inference_steps`."""
        if steps is None:
            return
        if isinstance(steps, bool) or int(steps) != steps or not 1 <= int(steps) <= self.max_inference_steps:
            raise ValueError(f"default_num_inference_steps must be a whole number in 1..{self.max_inference_steps}, "
                             f"got {steps!r}.")
        self.default_num_inference_steps = int(steps)
        self.register_to_config(default_num_inference_steps=int(steps))

    def check_vocoder(self) -> None:
        """Raise `ValueError` when a vocoder is present and the pipeline's mel is not the one it expects."""
        vocoder = getattr(self, "vocoder", None)
        if vocoder is not None:
            vocoder.check_mel(self.mel)

    @property
    def vae_scale_factor(self) -> int:
        """How many image pixels one latent pixel spans along each axis (1 without a vae)."""
        if getattr(self, "vae", None) is None:
            return 1
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def denoiser(self) -> torch.nn.Module:
        return self.unet

    @property
    def scheduler_name(self) -> str:
        return scheduler_name(self.scheduler)

    def set_scheduler(self, name: str) -> None:
        """Swap the scheduler for `name` (see `models.schedulers.SCHEDULERS`), keeping the noise schedule
        (x0 bounded to [-1, 1] for pixel-space models)."""
        bounded = getattr(self, "vae", None) is None
        self.register_modules(scheduler=make_scheduler(name, self.scheduler.config, bounded=bounded))

    def scheduler_for(self, name: str | None) -> SchedulerMixin | None:
        """A fresh scheduler `name` for one call, on this pipeline's noise schedule (x0 bounded to [-1, 1] for
        pixel-space models); None when `name` is None or the pipeline's own, which the call then uses."""
        if name is None or name == self.scheduler_name:
            return None
        return make_scheduler(name, self.scheduler.config, bounded=getattr(self, "vae", None) is None)

    # ---- checks ----------------------------------------------------------------------------

    def check_common_inputs(
        self,
        num_inference_steps: int,
        strength: float,
        batch_size: int,
        audio: np.ndarray | torch.Tensor | None,
        keep_regions_in_s: Sequence[tuple[float, float]] | None,
        extend_in_s: float | None,
        overlap_in_s: float,
    ) -> None:
        """Raise `ValueError` naming the offending argument and its allowed range."""
        if not isinstance(num_inference_steps, int) or not 1 <= num_inference_steps <= self.max_inference_steps:
            raise ValueError(
                f"num_inference_steps must be an integer in [1, {self.max_inference_steps}], "
                f"got {num_inference_steps!r}."
            )
        if not 0.0 <= float(strength) <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {strength!r}.")
        if not isinstance(batch_size, int) or not 1 <= batch_size <= 64:
            raise ValueError(f"batch size must be an integer in [1, 64], got {batch_size!r}.")
        if audio is None and (keep_regions_in_s or extend_in_s):
            raise ValueError("keep_regions_in_s and extend_in_s need input audio.")
        if keep_regions_in_s and extend_in_s:
            raise ValueError("Give either keep_regions_in_s (in/outpainting) or extend_in_s (continuation), not both.")
        for region in keep_regions_in_s or []:
            if len(region) != 2 or not 0 <= region[0] < region[1]:
                raise ValueError(f"A keep region must be (start_s, end_s) with 0 <= start_s < end_s, got {region!r}.")
        if extend_in_s is not None and not 0 < extend_in_s <= self.max_audio_length_in_s:
            raise ValueError(f"extend_in_s must be in (0, {self.max_audio_length_in_s}] s, got {extend_in_s!r}.")
        if not 0 < overlap_in_s < self.window_seconds:
            raise ValueError(f"overlap_in_s must be in (0, {self.window_seconds:.2f}) s, got {overlap_in_s!r}.")

    # ---- audio <-> mel windows -----------------------------------------------------------

    def prepare_input_audio(self, audio: np.ndarray | torch.Tensor, audio_sampling_rate: int | None) -> np.ndarray:
        """Checked float32 mono input audio at the model's sample rate."""
        return prepare_audio(audio, audio_sampling_rate, self.sample_rate, self.max_input_length_in_s)

    def window_starts(self, num_frames: int, overlap_frames: int = 0) -> torch.Tensor:
        """First frame of each window covering `num_frames` frames, windows `overlap_frames` apart
        less than a window (`[num_windows]`, long)."""
        stride = self.window_frames - overlap_frames
        extra = max(0, num_frames - self.window_frames)
        return torch.arange(1 + math.ceil(extra / stride)) * stride

    def audio_to_windows(self, audio: np.ndarray, overlap_frames: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Cut mono audio into model windows starting at `window_starts(frames, overlap_frames)`.

        Returns:
            images: `[num_windows, 1, y_res, x_res]` in [-1, 1], each scaled to its own loudest bin.
            window_peak_db: `[num_windows]`, each window's loudest mel bin in dB, to restore the
                relative levels of the windows when they are joined again.
        """
        starts = self.window_starts(self.mel.frames_for_samples(len(audio)), overlap_frames)
        total_frames = int(starts[-1]) + self.window_frames
        # `frames * hop - 1` samples give exactly `frames` centred frames (as audio-diffusion does).
        num_samples = total_frames * self.mel.config.hop_length - 1
        padded = np.zeros(num_samples, dtype=np.float32)
        padded[: min(len(audio), num_samples)] = audio[:num_samples]
        power = self.mel.audio_to_mel_power(torch.from_numpy(padded)[None].to(self.device))[0]
        windows = torch.stack([power[:, start : start + self.window_frames] for start in starts.tolist()])
        peak_db = 10.0 * torch.log10(windows.amax(dim=(1, 2)).clamp_min(1e-10))
        return self.mel.power_to_image(windows), peak_db

    def windows_to_frames(
        self, images: torch.Tensor, window_peak_db: torch.Tensor | None = None, overlap_frames: int = 0
    ) -> torch.Tensor:
        """Join `[batch * num_windows, 1, y, x]` window images (window-major per item), cut with
        `audio_to_windows(..., overlap_frames)`, into mel power `[batch, 1, y, frames]`: each window's
        level restored, overlapping frames crossfaded linearly in dB (as continuation does)."""
        num_windows = 1 if window_peak_db is None else len(window_peak_db)
        power = self.mel.image_to_mel_power(images)  # [batch * windows, y, x]
        if window_peak_db is not None:
            gains = torch.pow(10.0, window_peak_db.to(power.device) / 10.0).repeat(power.shape[0] // num_windows)
            power = power * gains[:, None, None]
        batch = power.shape[0] // num_windows
        windows = power.reshape(batch, num_windows, 1, *power.shape[1:])
        frames = windows[:, 0]
        for index in range(1, num_windows):
            frames = self.crossfade(frames, windows[:, index], overlap_frames)
        return frames

    @staticmethod
    def crossfade(frames: torch.Tensor, window: torch.Tensor, overlap_frames: int) -> torch.Tensor:
        """Append mel power `window` `[batch, 1, y, x]` to `frames` `[batch, 1, y, n]`, its first
        `overlap_frames` columns fading linearly (in dB) from the last columns of `frames`."""
        if overlap_frames == 0:
            return torch.cat([frames, window], dim=-1)
        ramp = torch.linspace(0.0, 1.0, overlap_frames, device=frames.device)
        joined_db = torch.lerp(
            10.0 * torch.log10(frames[..., -overlap_frames:].clamp_min(1e-10)),
            10.0 * torch.log10(window[..., :overlap_frames].clamp_min(1e-10)),
            ramp,
        )
        return torch.cat(
            [frames[..., :-overlap_frames], torch.pow(10.0, joined_db / 10.0), window[..., overlap_frames:]], dim=-1
        )

    @staticmethod
    def phase_seeds(generator: Generators, batch_size: int) -> list[int]:
        """Seeds of Griffin-Lim's initial phases for `batch_size` outputs, drawn from the caller's
        generator(s) before anything else: one generator gives the batch one phase pattern (an image
        sounds the same whatever batch it is in), a list one per output; None a fixed seed (0)."""
        if isinstance(generator, list):
            generators_for_windows(generator, batch_size, batch_size)
            return [_draw_seed(item) for item in generator]
        return [0 if generator is None else _draw_seed(generator)] * batch_size

    def frames_to_audio(
        self, mel_power: torch.Tensor, num_samples: int, phase_seeds: Sequence[int] | None = None
    ) -> np.ndarray:
        """Mel power `[batch, 1, y, frames]` -> float32 audio `[batch, 1, num_samples]` (the vocoder, or
        Griffin-Lim without one), peak-safe.

        Args:
            phase_seeds: Griffin-Lim: one seed of the initial phases per item (`phase_seeds`); None: seed 0.
        """
        if getattr(self, "vocoder", None) is not None:
            audio = self.vocoder.mel_to_audio(mel_power[:, 0].float(), num_samples).detach().cpu().numpy()
        else:
            audio = self.griffin_lim_audio(mel_power, num_samples, phase_seeds)
        peaks = np.abs(audio).max(axis=1, keepdims=True)
        # Level is relative (mel images are normalised), so only guard against clipping.
        audio = np.where(peaks > 0.99, audio * (0.99 / np.maximum(peaks, 1e-9)), audio)
        return audio[:, None, :].astype(np.float32)

    def griffin_lim_audio(
        self, mel_power: torch.Tensor, num_samples: int, phase_seeds: Sequence[int] | None = None
    ) -> np.ndarray:
        """Mel power `[batch, 1, y, frames]` -> float32 audio `[batch, num_samples]` by Griffin-Lim."""
        magnitude = self.mel.mel_to_magnitude(mel_power[:, 0].float())
        length = max(num_samples, magnitude.shape[-1] * self.mel.config.hop_length)
        seeds = [0] * len(magnitude) if phase_seeds is None else list(phase_seeds)
        # One item at a time: on CPU a batch of 8 ran ~2.5x slower per item (its STFTs fall out of cache).
        audio = torch.cat([
            self.mel.griffin_lim(item[None], length=length,
                                 generator=torch.Generator(device=magnitude.device).manual_seed(seed))
            for item, seed in zip(magnitude, seeds)
        ])
        return audio[:, :num_samples].detach().cpu().numpy()

    def power_to_pictures(self, mel_power: torch.Tensor) -> list:
        """8-bit display pictures of mel power images `[batch, 1, y, frames]`."""
        return self.mel.to_pil(self.mel.power_to_image(mel_power[:, 0]))

    # ---- latents ---------------------------------------------------------------------------

    def latent_shape(self, batch: int, frames: int | None = None) -> tuple[int, int, int, int]:
        frames = frames or self.window_frames
        factor = self.vae_scale_factor
        channels = self.denoiser.config.in_channels
        return batch, channels, self.mel.config.y_res // factor, frames // factor

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Mel images in [-1, 1] -> what the denoiser works on (latents scaled by the vae's factor, or the images)."""
        images = images.to(device=self.device, dtype=self.denoiser.dtype)
        if getattr(self, "vae", None) is None:
            return images
        latents = self.vae.encode(images.to(self.vae.dtype)).latent_dist.mean
        return (latents * self.vae.config.scaling_factor).to(self.denoiser.dtype)

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Inverse of `encode_images`: float32 mel images in [-1, 1]."""
        if getattr(self, "vae", None) is not None:
            latents = latents.to(self.vae.dtype) / self.vae.config.scaling_factor
            latents = self.vae.decode(latents).sample
        return latents.float().clamp(-1.0, 1.0)

    def keep_mask_for_windows(
        self, keep_regions_in_s: Sequence[tuple[float, float]], window_starts: torch.Tensor
    ) -> torch.Tensor:
        """Mask `[num_windows, 1, 1, latent_frames]`, 1 where every frame of a latent column lies in a kept region.

        Args:
            window_starts: first frame of each window (`window_starts`).
        """
        seconds_per_frame = self.mel.config.hop_length / self.sample_rate
        frame_times = (window_starts[:, None] + torch.arange(self.window_frames)).float() * seconds_per_frame
        keep = torch.zeros_like(frame_times)
        for start_s, end_s in keep_regions_in_s:
            keep[(frame_times >= start_s) & (frame_times + seconds_per_frame <= end_s + 1e-9)] = 1.0
        keep = keep.reshape(len(window_starts), 1, 1, self.window_frames)
        factor = self.vae_scale_factor
        # A latent column is kept only if all the frames it spans are kept (min-pool).
        keep = -torch.nn.functional.max_pool2d(-keep, kernel_size=(1, factor)) if factor > 1 else keep
        return keep.to(self.device)

    # ---- the denoising loop ----------------------------------------------------------------

    def prepare_extra_step_kwargs(self, generator: torch.Generator | list | None, eta: float,
                                  scheduler: SchedulerMixin | None = None) -> dict:
        """`eta` and `generator` for schedulers whose `step` accepts them (DDIM's eta, DDPM's noise)."""
        accepted = set(inspect.signature((scheduler or self.scheduler).step).parameters)
        extra = {}
        if "eta" in accepted:
            extra["eta"] = eta
        if "generator" in accepted:
            extra["generator"] = generator
        return extra

    def denoise(
        self,
        predict_noise: NoisePredictor,
        shape: tuple[int, ...],
        num_inference_steps: int,
        generator: torch.Generator | list[torch.Generator] | None,
        init_latents: torch.Tensor | None = None,
        strength: float = 1.0,
        keep_mask: torch.Tensor | None = None,
        eta: float = 0.0,
        on_step: Callable[[], None] | None = None,
        noise: torch.Tensor | None = None,
        scheduler: SchedulerMixin | None = None,
    ) -> torch.Tensor:
        """Run the scheduler from noise (or from `init_latents` noised according to `strength`) to latents.

        Args:
            predict_noise: the model's output for (scaled latents, timestep).
            shape: latent shape `[batch, channels, height, width]`.
            init_latents: latents of the input audio, for variations and in/outpainting.
            strength: 1 starts from pure noise (input ignored except kept regions); 0 returns
                `init_latents` unchanged; in between skips the first `(1 - strength)` of the steps.
            scheduler: the sampler of this call (None: the pipeline's own).
            keep_mask: `[batch or 1, 1, 1, width]`, 1 where `init_latents` is kept: after every
                step those columns are replaced by the input noised to the next step's level.
        """
        scheduler = scheduler or self.scheduler
        scheduler.set_timesteps(num_inference_steps, device=self.device)
        dtype = self.denoiser.dtype
        if noise is None:
            noise = randn_tensor(shape, generator=generator, device=self.device, dtype=dtype)
        noise = noise.to(device=self.device, dtype=dtype)
        skipped = 0 if init_latents is None else min(num_inference_steps, round(num_inference_steps * (1 - strength)))
        start = skipped * scheduler.order
        timesteps = scheduler.timesteps[start:]
        if hasattr(scheduler, "set_begin_index"):
            scheduler.set_begin_index(start)
        if init_latents is not None:
            init_latents = init_latents.to(device=self.device, dtype=dtype).expand(shape)
        if len(timesteps) == 0:
            return init_latents
        if init_latents is None or skipped == 0:
            latents = noise * scheduler.init_noise_sigma
        else:
            latents = scheduler.add_noise(init_latents, noise, timesteps[:1])
        if keep_mask is not None:
            keep_mask = keep_mask.to(device=self.device, dtype=dtype)
            latents = keep_mask * scheduler.add_noise(init_latents, noise, timesteps[:1]) + (1 - keep_mask) * latents

        extra_step_kwargs = self.prepare_extra_step_kwargs(generator, eta, scheduler)
        autocast = self.cpu_autocast_dtype is not None and self.device.type == "cpu"
        for index, timestep in enumerate(timesteps):
            model_input = scheduler.scale_model_input(latents, timestep)
            with torch.autocast("cpu", dtype=self.cpu_autocast_dtype or torch.bfloat16, enabled=autocast):
                noise_pred = predict_noise(model_input, timestep)
            latents = scheduler.step(noise_pred.to(dtype), timestep, latents, **extra_step_kwargs).prev_sample
            if keep_mask is not None:
                if index + 1 < len(timesteps):
                    known = scheduler.add_noise(init_latents, noise, timesteps[index + 1 : index + 2])
                else:
                    known = init_latents
                latents = keep_mask * known + (1 - keep_mask) * latents
            if on_step is not None:
                on_step()
        return latents

    def noise_predictor(self, call: WindowCall, first_frames: torch.Tensor) -> NoisePredictor:
        """The hook subclasses implement: the model's `(scaled latents, timestep) -> noise` for a batch
        of windows starting `first_frames` frames (`[batch]`) into the output, with the call's
        conditioning (`call.conditioning`)."""
        raise NotImplementedError

    def sample_windows(
        self,
        call: WindowCall,
        init_images: torch.Tensor | None,
        strength: float,
        keep_mask: torch.Tensor | None,
        first_frames: torch.Tensor,
        width: int | None = None,
    ) -> torch.Tensor:
        """Denoise a batch of windows: mel images in [-1, 1] `[batch, 1, y, x_res]` (through the vae if any).

        Args:
            init_images: the windows' input images (variation, in/outpainting, continuation) or None.
            strength, keep_mask: as in `denoise`.
            first_frames: `[batch]` each window's first frame in the output, item-major (each output's
                windows in turn); `batch` is a multiple of `call.batch_size`.
            width: the windows' width in frames when generated from scratch (None: `x_res`;
                `first_window_frames`).
        """
        batch = len(first_frames)
        init_latents = None if init_images is None else self.encode_images(init_images)
        latents = self.denoise(
            self.noise_predictor(call, first_frames), self.latent_shape(batch, width), call.num_inference_steps,
            generators_for_windows(call.generator, call.batch_size, batch), init_latents=init_latents,
            strength=strength, keep_mask=keep_mask, eta=call.eta, on_step=call.on_step, scheduler=call.scheduler,
        )
        return self.decode_latents(latents)

    # ---- continuation ----------------------------------------------------------------------

    def extend_frames(
        self, call: WindowCall, frames: torch.Tensor, extra_frames: int, overlap_frames: int
    ) -> torch.Tensor:
        """Grow mel power images `[batch, 1, y, frames]` by `extra_frames` columns, window by window.

        Each new window keeps the last `overlap_frames` columns as context and regenerates the rest;
        the regenerated context crossfades linearly (in dB) into the existing columns.
        """
        target = frames.shape[-1] + extra_frames
        while frames.shape[-1] < target:
            # An input shorter than the overlap (a clip under one window) is all context.
            context_frames = min(overlap_frames, frames.shape[-1])
            keep = self.context_mask(context_frames)
            context = frames[..., -context_frames:]
            reference_db = 10.0 * torch.log10(context.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-10))
            # Scale the context so its loudest bin is 0 dB, as in training windows.
            context_image = self.mel.power_to_image(context[:, 0] / torch.pow(10.0, reference_db[:, 0] / 10.0))
            init = torch.full((frames.shape[0], 1, self.mel.config.y_res, self.window_frames), -1.0,
                              device=frames.device)
            init[..., :context_frames] = context_image
            first_frames = torch.full((frames.shape[0],), frames.shape[-1] - context_frames)
            window = self.sample_windows(call, init, 1.0, keep.to(self.device), first_frames)
            window_power = self.mel.image_to_mel_power(window).unsqueeze(1) * torch.pow(10.0, reference_db / 10.0)
            frames = self.crossfade(frames, window_power, context_frames)
        return frames[..., :target]

    def context_mask(self, context_frames: int) -> torch.Tensor:
        """`[1, 1, 1, window columns]` keep mask of a continuation window: 1 over its first `context_frames`
        mel frames (in latent columns for latent models), 0 where it is generated."""
        keep = torch.zeros(1, 1, 1, self.window_frames)
        keep[..., :context_frames] = 1.0
        factor = self.vae_scale_factor
        return -torch.nn.functional.max_pool2d(-keep, kernel_size=(1, factor)) if factor > 1 else keep

    def splice_original(
        self, generated: np.ndarray, original: np.ndarray, keep_in_samples: np.ndarray, crossfade_samples: int
    ) -> np.ndarray:
        """Put the original waveform back where it was kept, level-matched, with short crossfades.

        Args:
            generated: `[batch, 1, samples]` Griffin-Lim output.
            original: mono input `[samples]` (shorter or longer than `generated`: cut or zero padded).
            keep_in_samples: `[samples]` booleans, True where the original is kept.
            crossfade_samples: length of the linear ramps at region boundaries.
        """
        num_samples = generated.shape[-1]
        source = np.zeros(num_samples, dtype=np.float32)
        source[: min(num_samples, len(original))] = original[:num_samples]
        kept = keep_in_samples[:num_samples].astype(bool)
        keep = kept.astype(np.float32)
        if crossfade_samples > 1:
            # Linear ramps inside the kept regions: 0 at a region's edge, 1 after crossfade_samples / 2.
            # Edge padding: the file's own start and end are not region edges.
            half = crossfade_samples // 2
            padded = np.pad(keep, (half, crossfade_samples - 1 - half), mode="edge")
            smoothed = np.convolve(padded, np.ones(crossfade_samples) / crossfade_samples, mode="valid")
            keep = np.clip(2.0 * smoothed - 1.0, 0.0, 1.0) * keep
        out = np.empty_like(generated)
        for item in range(generated.shape[0]):
            wave = generated[item, 0]
            # Griffin-Lim output has a relative level and its own phase: match RMS on the kept part.
            gain = 1.0
            if kept.any():
                gain = float(np.sqrt(np.mean(source[kept] ** 2) / max(np.mean(wave[kept] ** 2), 1e-12)))
            # The kept audio is never rescaled; the generated part may not peak above it (or 0.99).
            ceiling = max(0.99, float(np.abs(source).max()))
            gain = min(gain, ceiling / max(float(np.abs(wave).max()), 1e-9))
            out[item, 0] = keep * source + (1.0 - keep) * wave * gain
        return out.astype(np.float32)

    # ---- the whole flow, shared by both pipelines' __call__ ----------------------------------

    def generate_frames(
        self,
        call: WindowCall,
        num_samples: int,
        original: np.ndarray | None,
        strength: float,
        keep_regions_in_s: Sequence[tuple[float, float]] | None,
        extend: bool,
        overlap_in_s: float,
        progress_callback: ProgressCallback | None,
    ) -> torch.Tensor:
        """Mel power `[call.batch_size, 1, y, frames]` covering `num_samples` samples.

        Variation / in-outpainting denoise every (overlapping) window of `original`; continuation
        starts from the input's frames; otherwise the first window is generated from noise. Then the
        frames grow window by window until they cover `num_samples`. `progress_callback` is called
        as `(steps_done, steps_total)` after every denoising step.
        """
        # 1. Count the steps to report progress
        batch_size = call.batch_size
        generators_for_windows(call.generator, batch_size, batch_size)  # a wrong-length list fails here
        overlap_frames = max(1, round(overlap_in_s * self.sample_rate / self.mel.config.hop_length))
        total_frames = self.mel.frames_for_samples(num_samples)
        steps_total = self.count_steps(original, total_frames, overlap_frames, call.num_inference_steps, strength,
                                       extend)
        with self.progress_bar(total=steps_total) as bar:
            call.on_step = StepCounter(steps_total, bar, progress_callback)

            # 2. The first frames: the input's windows denoised, the input itself, or one new window (widened
            # to cover a clip a little longer than one window: `first_window_frames`)
            if original is not None and not extend:
                windows, peak_db = self.audio_to_windows(original, overlap_frames)
                starts = self.window_starts(self.mel.frames_for_samples(len(original)), overlap_frames)
                keep_mask = None
                if keep_regions_in_s:
                    keep_mask = self.keep_mask_for_windows(keep_regions_in_s, starts).repeat(batch_size, 1, 1, 1)
                images = self.sample_windows(call, windows.repeat(batch_size, 1, 1, 1), strength, keep_mask,
                                             starts.repeat(batch_size))
                frames = self.windows_to_frames(images, peak_db, overlap_frames)
            elif original is not None:
                frames = self.mel.audio_to_mel_power(torch.from_numpy(original)[None].to(self.device))
                frames = frames[:, None].repeat(batch_size, 1, 1, 1)
            else:
                images = self.sample_windows(call, None, 1.0, None, torch.zeros(batch_size, dtype=torch.long),
                                             width=self.first_window_frames(total_frames))
                frames = self.windows_to_frames(images)

            # 3. Grow to the asked length
            if frames.shape[-1] < total_frames:
                frames = self.extend_frames(call, frames, total_frames - frames.shape[-1], overlap_frames)
        return frames[..., :total_frames]

    def frames_to_output(
        self,
        frames: torch.Tensor,
        num_samples: int,
        original: np.ndarray | None,
        keep_regions_in_s: Sequence[tuple[float, float]] | None,
        extend: bool,
        overlap_in_s: float,
        phase_seeds: Sequence[int] | None = None,
    ) -> GeneratedAudio:
        """Decode (vocoder or Griffin-Lim) to exactly `num_samples` samples at a usable level, the original waveform
        put back where it was kept (in/outpainting, continuation), and display pictures. Clips made from scratch
        go through the floor stage first, when the pipeline has one (`floor_stage`)."""
        if original is None and self.floor_stage is not None:
            frames = self.floor_stage(frames, self.mel.db_per_decade)
        audios = self.set_level(self.frames_to_audio(frames, num_samples, phase_seeds), original)
        if original is not None and (keep_regions_in_s or extend):
            overlap_samples = round(overlap_in_s * self.sample_rate)
            keep = self.kept_samples(num_samples, keep_regions_in_s, len(original), overlap_samples)
            audios = self.splice_original(audios, original, keep, crossfade_samples=overlap_samples // 2)
        return GeneratedAudio(audios=audios, sample_rate=self.sample_rate, images=self.power_to_pictures(frames))

    def set_level(self, audios: np.ndarray, original: np.ndarray | None) -> np.ndarray:
        """Give `[batch, 1, samples]` Griffin-Lim audio a level: mel images are normalised per window, so
        the model knows only relative levels. From scratch: peaks at `OUTPUT_PEAK` (-1 dBFS, the level
        of a normalised sample; the demo corpus's clips peak at -2.6 dBFS, median). From input audio:
        the input's RMS, never above the ceiling (kept regions are matched again when spliced)."""
        peaks = np.abs(audios).max(axis=-1, keepdims=True)
        if original is None:
            return (audios * (OUTPUT_PEAK / np.maximum(peaks, 1e-9))).astype(np.float32)
        target_rms = float(np.sqrt(np.mean(original.astype(np.float64) ** 2)))
        rms = np.sqrt(np.mean(audios.astype(np.float64) ** 2, axis=-1, keepdims=True))
        gains = np.minimum(target_rms / np.maximum(rms, 1e-12), OUTPUT_PEAK / np.maximum(peaks, 1e-9))
        return (audios * gains).astype(np.float32)

    def count_steps(
        self, original: np.ndarray | None, total_frames: int, overlap_frames: int, num_inference_steps: int,
        strength: float, extend: bool,
    ) -> int:
        """Denoising steps a call will run, for progress reporting."""
        if original is not None and not extend:  # all the input's windows in one batch
            return num_inference_steps - min(num_inference_steps, round(num_inference_steps * (1 - strength)))
        have = self.mel.frames_for_samples(len(original)) if original is not None else self.first_window_frames(
            total_frames)
        windows = 0 if original is not None else 1
        while have < total_frames:  # as `extend_frames` grows them: a short input is all context
            have += self.window_frames - min(overlap_frames, have)
            windows += 1
        return windows * num_inference_steps

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
        else:  # continuation: the input is kept up to the middle of the overlap
            keep[: max(0, input_samples - overlap_samples // 2)] = True
        return keep


class StepCounter:
    """Counts denoising steps: advances the tqdm bar and calls `progress_callback(steps_done, steps_total)`."""

    def __init__(self, steps_total: int, bar, progress_callback: ProgressCallback | None) -> None:
        self.steps_done, self.steps_total = 0, steps_total
        self.bar, self.progress_callback = bar, progress_callback

    def __call__(self) -> None:
        self.steps_done += 1
        self.bar.update()
        if self.progress_callback is not None:
            self.progress_callback(self.steps_done, self.steps_total)


def generators_for_windows(generator: Generators, batch_size: int, batch: int) -> Generators:
    """The call's generator(s) for a batch of `batch` windows, item-major: a list of `batch_size`
    generators becomes one per window, each output's generator drawing the noise of all its windows."""
    if not isinstance(generator, list):
        return generator
    if len(generator) != batch_size:
        raise ValueError(f"Got {len(generator)} generators for {batch_size} outputs: pass one generator, "
                         "or one per output.")
    repeats = batch // batch_size
    return [item for item in generator for _ in range(repeats)]


def _draw_seed(generator: torch.Generator) -> int:
    """A seed drawn from `generator` (on its own device), for a generator of another device or purpose."""
    return int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())
