"""Where audio becomes a mel "image" and back: batched torch STFT, dB scaling to [-1, 1], fast Griffin-Lim.

The config (`mel_config.json`: x_res, y_res, sample_rate, n_fft, hop_length, top_db, n_iter) and the
scaling are those of diffusers' deprecated `Mel` (audio-diffusion by R. Dargavel Smith), so
teticio/audio-diffusion checkpoints work with it. Three later keys (`f_min`, `f_max`, `power`) let a
model use the mel a neural vocoder expects (HiFi-GAN: magnitude mel up to 8 kHz, see
`models/vocoder.py`); their defaults are audio-diffusion's power mel over the whole band. Unlike that class,
everything here is batched, runs on the tensors' device and never quantises to 8 bits (8-bit pictures are for
display only).
"""
from __future__ import annotations

import math

import librosa
import numpy as np
import PIL.Image
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin

# Smallest power (not amplitude) kept before taking logs; librosa.power_to_db's default.
_AMIN = 1e-10


class Mel(ConfigMixin, SchedulerMixin):
    """Audio <-> mel spectrogram images in [-1, 1], shape `[batch, 1, y_res, x_res]`.

    Row 0 of an image is the lowest mel band, column 0 the first STFT frame. Each image is scaled
    in dB relative to its own loudest bin (audio-diffusion's `ref=np.max`), so 0 dB maps to 1 and
    `-top_db` or quieter maps to -1.

    `SchedulerMixin` is only there so that `DiffusionPipeline.save_pretrained`/`from_pretrained`
    save and load this component as a config file, as diffusers' own `Mel` does.

    Args:
        x_res: image width in STFT frames (time).
        y_res: image height in mel bands (frequency).
        sample_rate: audio sample rate in Hz.
        n_fft: STFT size in samples.
        hop_length: STFT hop in samples.
        top_db: dynamic range of the image in dB.
        n_iter: Griffin-Lim iterations used by `image_to_audio`.
        f_min: lowest frequency of the mel filterbank in Hz.
        f_max: highest frequency of the mel filterbank in Hz (None: `sample_rate / 2`).
        power: exponent of the STFT magnitude before the filterbank: 2 a power mel (audio-diffusion's),
            1 a magnitude mel (HiFi-GAN's). The image is in dB either way (`20 / power * log10`).
    """

    config_name = "mel_config.json"

    @register_to_config
    def __init__(
        self,
        x_res: int = 256,
        y_res: int = 256,
        sample_rate: int = 22050,
        n_fft: int = 2048,
        hop_length: int = 512,
        top_db: int = 80,
        n_iter: int = 32,
        f_min: float = 0.0,
        f_max: float | None = None,
        power: float = 2.0,
    ):
        for name, value in dict(x_res=x_res, y_res=y_res, sample_rate=sample_rate, n_fft=n_fft,
                                hop_length=hop_length, top_db=top_db, n_iter=n_iter).items():
            if int(value) <= 0:
                raise ValueError(f"Mel {name} must be a positive integer, got {value!r}.")
        if y_res > n_fft // 2 + 1:
            raise ValueError(f"Mel y_res={y_res} mel bands need n_fft >= {2 * (y_res - 1)}, got n_fft={n_fft}.")
        nyquist = sample_rate / 2
        if not 0 <= f_min < (nyquist if f_max is None else f_max) <= nyquist:
            raise ValueError(f"Mel needs 0 <= f_min < f_max <= {nyquist:g} Hz, got f_min={f_min!r}, f_max={f_max!r}.")
        if power not in (1.0, 2.0):
            raise ValueError(f"Mel power must be 1 (magnitude mel) or 2 (power mel), got {power!r}.")
        self._filterbanks: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}
        self._windows: dict[torch.device, torch.Tensor] = {}

    # ---- sizes -------------------------------------------------------------------------------

    @property
    def sample_rate(self) -> int:
        """Audio sample rate in Hz."""
        return self.config.sample_rate

    @property
    def db_per_decade(self) -> float:
        """dB per factor of 10 of the filterbank output: 10 for a power mel, 20 for a magnitude mel."""
        return 20.0 / self.config.power

    @property
    def samples_per_image(self) -> int:
        """Samples of audio one image covers: `x_res * hop_length`."""
        return self.config.x_res * self.config.hop_length

    @property
    def seconds_per_image(self) -> float:
        """Seconds of audio one image covers."""
        return self.samples_per_image / self.config.sample_rate

    def frames_for_samples(self, num_samples: int) -> int:
        """Number of image columns (STFT frames) spanning `num_samples` samples, rounded up."""
        return math.ceil(num_samples / self.config.hop_length)

    # ---- cached constants --------------------------------------------------------------------

    def filterbank(self, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """librosa's Slaney mel filterbank from `f_min` to `f_max` Hz, `[y_res, n_fft // 2 + 1]`, on `device`."""
        key = (torch.device(device), dtype)
        if key not in self._filterbanks:
            fb = librosa.filters.mel(sr=self.config.sample_rate, n_fft=self.config.n_fft, n_mels=self.config.y_res,
                                     fmin=self.config.f_min, fmax=self.config.f_max)
            self._filterbanks[key] = torch.from_numpy(fb).to(device=device, dtype=dtype)
        return self._filterbanks[key]

    def _window(self, device: torch.device) -> torch.Tensor:
        key = torch.device(device)
        if key not in self._windows:
            self._windows[key] = torch.hann_window(self.config.n_fft, device=device)
        return self._windows[key]

    # ---- analysis ----------------------------------------------------------------------------

    def stft(self, audio: torch.Tensor) -> torch.Tensor:
        """Complex STFT `[batch, n_fft // 2 + 1, frames]` of float32 audio `[batch, samples]` (centred, zero padded)."""
        return torch.stft(
            audio.float(), n_fft=self.config.n_fft, hop_length=self.config.hop_length,
            window=self._window(audio.device), center=True, pad_mode="constant", return_complex=True,
        )

    def audio_to_mel_power(self, audio: torch.Tensor) -> torch.Tensor:
        """Mel spectrogram `[batch, y_res, frames]` of audio `[batch, samples]`: the filterbank applied to
        `|STFT| ** power` (a power mel by default; "mel power" throughout means this, whatever `power`)."""
        magnitude = self.stft(audio).abs()
        return self.filterbank(audio.device) @ (magnitude.square() if self.config.power == 2 else magnitude)

    def mel_to_db(self, mel_power: torch.Tensor) -> torch.Tensor:
        """Mel power (see `audio_to_mel_power`) in dB, floored at `_AMIN`."""
        return self.db_per_decade * torch.log10(mel_power.clamp_min(_AMIN))

    def power_to_image(self, mel_power: torch.Tensor) -> torch.Tensor:
        """Mel power `[batch, y_res, frames]` -> images `[batch, 1, y_res, frames]` in [-1, 1]
        (dB re each image's max)."""
        db = self.mel_to_db(mel_power)
        db = db - db.amax(dim=(-2, -1), keepdim=True)
        db = db.clamp_min(-float(self.config.top_db))
        return (2.0 * db / self.config.top_db + 1.0).unsqueeze(1)

    def audio_to_image(self, audio: torch.Tensor, x_res: int | None = None) -> torch.Tensor:
        """Audio `[batch, samples]` at `sample_rate` -> images `[batch, 1, y_res, x_res]` in [-1, 1].

        Audio shorter than `x_res` frames is padded with silence; longer audio is cut. Pass `x_res`
        to analyse a different number of frames than the config's (continuations, long inputs).
        """
        if audio.ndim == 1:
            audio = audio.unsqueeze(0)
        frames = x_res or self.config.x_res
        # audio-diffusion analyses `x_res * hop - 1` samples, which gives exactly x_res centred frames.
        num_samples = frames * self.config.hop_length - 1
        audio = audio[..., :num_samples]
        if audio.shape[-1] < num_samples:
            audio = torch.nn.functional.pad(audio, (0, num_samples - audio.shape[-1]))
        return self.power_to_image(self.audio_to_mel_power(audio))

    # ---- synthesis ---------------------------------------------------------------------------

    def image_to_mel_power(self, images: torch.Tensor) -> torch.Tensor:
        """Images `[batch, 1, y_res, frames]` in [-1, 1] -> mel power `[batch, y_res, frames]` (max 1)."""
        db = (images.float().squeeze(1).clamp(-1.0, 1.0) - 1.0) * self.config.top_db / 2.0
        return torch.pow(10.0, db / self.db_per_decade)

    def mel_to_magnitude(self, mel_power: torch.Tensor, nnls_iter: int = 8) -> torch.Tensor:
        """Linear STFT magnitude `[batch, n_fft // 2 + 1, frames]` whose mel projection matches `mel_power`.

        librosa solves this non-negative least-squares problem with scipy's NNLS per frame, which
        dominates the cost of `mel_to_audio`. Here: the pseudo-inverse, clamped to be non-negative,
        refined by a few batched multiplicative NNLS updates (Lee & Seung), all on the device.
        """
        fb = self.filterbank(mel_power.device)
        pinv = self._pinv(mel_power.device)
        power = (pinv @ mel_power).clamp_min(1e-12)
        fb_t = fb.transpose(0, 1)
        numerator = fb_t @ mel_power
        for _ in range(nnls_iter):
            power = power * numerator / (fb_t @ (fb @ power)).clamp_min(1e-12)
        return power.sqrt() if self.config.power == 2 else power

    def _pinv(self, device: torch.device) -> torch.Tensor:
        key = (torch.device(device), "pinv")
        if key not in self._filterbanks:
            self._filterbanks[key] = torch.linalg.pinv(self.filterbank(device, torch.float64)).float()
        return self._filterbanks[key]

    def griffin_lim(
        self,
        magnitude: torch.Tensor,
        n_iter: int | None = None,
        momentum: float = 0.99,
        length: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Fast Griffin-Lim (Perraudin et al. 2013, as in librosa.griffinlim) on a batch, on its device.

        Args:
            magnitude: linear STFT magnitudes `[batch, n_fft // 2 + 1, frames]`.
            n_iter: iterations; the config's `n_iter` when None.
            momentum: the "fast" in fast Griffin-Lim; 0 gives the classic algorithm.
            length: output length in samples; `frames * hop_length` when None.
            generator: seeds the random initial phases, shared by the batch (a fixed seed when None).
        Returns:
            Audio `[batch, length]`, float32.
        """
        n_iter = self.config.n_iter if n_iter is None else n_iter
        length = length or magnitude.shape[-1] * self.config.hop_length
        magnitude = magnitude.float()
        if generator is None:
            generator = torch.Generator(device=magnitude.device).manual_seed(0)
        # One random phase pattern shared by the batch, so an image gives the same audio whatever
        # batch it is in (a variation at strength 0 then equals the plain reconstruction).
        phase = torch.rand((1, *magnitude.shape[1:]), generator=generator, device=generator.device)
        phase = phase.to(magnitude.device)
        angles = torch.polar(torch.ones_like(magnitude), 2 * math.pi * phase)
        window = self._window(magnitude.device)
        istft_kwargs = dict(n_fft=self.config.n_fft, hop_length=self.config.hop_length, window=window,
                            center=True, length=length)
        rebuilt = torch.zeros_like(angles)
        for _ in range(n_iter):
            previous = rebuilt
            audio = torch.istft(magnitude * angles, **istft_kwargs)
            rebuilt = self.stft(audio)[..., : magnitude.shape[-1]]
            angles = rebuilt - (momentum / (1 + momentum)) * previous
            angles = angles / (angles.abs() + 1e-16)
        return torch.istft(magnitude * angles, **istft_kwargs)

    def image_to_audio(
        self,
        images: torch.Tensor,
        n_iter: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Images `[batch, 1, y_res, frames]` in [-1, 1] -> audio `[batch, frames * hop_length]`, float32.

        The output level is relative: each image's loudest bin becomes 0 dB (power 1).
        """
        if images.ndim == 3:
            images = images.unsqueeze(1)
        magnitude = self.mel_to_magnitude(self.image_to_mel_power(images))
        return self.griffin_lim(magnitude, n_iter=n_iter, generator=generator)

    # ---- display -----------------------------------------------------------------------------

    @staticmethod
    def to_pil(images: torch.Tensor) -> list[PIL.Image.Image]:
        """8-bit greyscale pictures (low frequencies at the bottom) of images in [-1, 1], for display only."""
        pixels = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()
        return [PIL.Image.fromarray(np.flipud(image[0])) for image in pixels]

    @staticmethod
    def from_pil(picture: PIL.Image.Image) -> torch.Tensor:
        """Inverse of `to_pil` for one picture: `[1, 1, y_res, x_res]` in [-1, 1] (8-bit precision)."""
        pixels = np.flipud(np.asarray(picture.convert("L"), dtype=np.float32)).copy()
        return torch.from_numpy(pixels / 127.5 - 1.0)[None, None]


def spectral_convergence(reference: torch.Tensor, estimate: torch.Tensor, mel: Mel) -> float:
    """Spectral convergence `|| |S_ref| - g |S_est| ||_F / || |S_ref| ||_F` of two waveforms `[batch, samples]`.

    0 means identical magnitude spectrograms; phase is ignored. The gain `g` is the least-squares
    fit, because mel images are level-normalised (each image's loudest bin is 0 dB), so a round trip
    keeps the spectral shape but not the absolute level. Waveforms are cut to the shorter one.
    """
    num_samples = min(reference.shape[-1], estimate.shape[-1])
    ref = mel.stft(reference[..., :num_samples].float()).abs()
    est = mel.stft(estimate[..., :num_samples].float()).abs()
    gain = (ref * est).sum() / est.square().sum().clamp_min(1e-12)
    return float(torch.linalg.norm(ref - gain * est) / torch.linalg.norm(ref).clamp_min(1e-12))
