"""The field's standard embedders, in this environment (torch + transformers, no second venv):
`vggish`, `pann-cnn14` / `pann-cnn14-16k`, `openl3`, `clap-laion-music` (with `clap-laion` in
`embedders`), `mert-v1-95m` and `encodec-24khz`. Each states its sample rate (Hz), window (s),
pooling and the exact source of its weights (`weight_source`), and loads them from the torch.hub /
Hugging Face caches, downloading once when online. `HF_HUB_OFFLINE=1` (set by the tests) means
"never download": a weight file that is not cached is then an `EmbedderUnavailableError`.

Every network can also be given a local file or folder (`--embedder-checkpoint`), which is how
the tests load random-weight instances of the same classes through the same code path.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import ClassVar
from urllib.parse import unquote, urlparse

import numpy as np
import torch
from torch.nn import functional as F

from evaluation.embedder_base import (
    Embedder,
    EmbedderUnavailableError,
    batches_by_length,
    register,
)
from music.audiofolder import file_sha256


def offline() -> bool:
    """Downloads are off (`HF_HUB_OFFLINE=1`, as huggingface_hub reads it)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def torch_hub_file(url: str) -> Path:
    """Where torch.hub caches `url` (`$TORCH_HOME/hub/checkpoints/<file name>`)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / unquote(Path(urlparse(url).path).name)


def fetch_torch_hub(url: str, what: str, check_hash: bool = False) -> Path:
    """The cached file for `url`, downloaded once by torch.hub; a clear error when offline."""
    path = torch_hub_file(url)
    if path.exists():
        return path
    advice = (
        f"{what} needs {url} (cached at {path}); connect once to download it, or copy the file "
        "there, or pass --embedder-checkpoint FILE"
    )
    if offline():
        raise EmbedderUnavailableError(f"{advice} (downloads are off: HF_HUB_OFFLINE=1)")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        hash_prefix = path.stem.split("-")[-1] if check_hash else None
        torch.hub.download_url_to_file(url, str(path), hash_prefix=hash_prefix, progress=True)
    except Exception as error:
        raise EmbedderUnavailableError(f"{advice}: {error}") from error
    return path


def hub_snapshot(model_id: str, what: str, patterns: list[str]) -> Path:
    """A local folder for a Hugging Face model id (or the folder itself), downloading once."""
    local = Path(model_id).expanduser()
    if local.is_dir():
        return local
    if local.suffix or model_id.startswith((".", "/", "~")):
        raise EmbedderUnavailableError(f"{what}: no model folder at {model_id}")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(model_id, allow_patterns=patterns))
    except Exception as error:
        raise EmbedderUnavailableError(
            f"cannot load {model_id!r} for {what}: needs the Hugging Face Hub once (then cached) or "
            f"a local copy passed with --embedder-checkpoint ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''})"
        ) from error


def hub_cached(model_id: str, filename: str = "config.json") -> bool:
    """Whether `model_id` is in the local Hugging Face cache (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(model_id, filename), str)
    except Exception:  # noqa: BLE001  (a broken cache just means "not cached")
        return False


def load_torch_weights(path: Path, allow_pickle: bool = False) -> dict:
    """A state dict from `.pth`/`.bin` (tensors only unless `allow_pickle`) or `.safetensors`."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=not allow_pickle)


class WeightsFileEmbedder(Embedder):
    """An embedder whose network is one weights file: a download URL or a local file (`weights`)."""

    checkpoint_argument = "weights"
    weights_url: ClassVar[str | None] = None
    weight_source: ClassVar[str] = ""

    def __init__(self, weights: str | Path | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.weights = Path(weights) if weights is not None else None
        self.model = None
        self._weights_hash = "unloaded"

    @classmethod
    def default_weights_path(cls) -> Path | None:
        return torch_hub_file(cls.weights_url) if cls.weights_url else None

    @classmethod
    def usable_now(cls) -> tuple[bool, str]:
        path = cls.default_weights_path()
        if path is not None and path.exists():
            return True, f"weights cached at {path}"
        return False, f"downloads {path.name if path else 'weights'} once (needs internet)"

    def weights_path(self) -> Path:
        if self.weights is not None:
            if not self.weights.is_file():
                raise EmbedderUnavailableError(f"{self.name}: no weights file at {self.weights}")
            return self.weights
        return fetch_torch_hub(self.weights_url, self.name)

    @property
    def version(self) -> str:
        return f"{self.code_version}-{self._weights_hash}"

    def describe(self) -> dict:
        return {
            **super().describe(),
            "weights": str(self.weights or self.default_weights_path()),
            "weights_sha256_16": self._weights_hash,
            "weight_source": self.weight_source,
        }


@register
class VggishEmbedder(WeightsFileEmbedder):
    """VGGish in torch (`evaluation.vggish`), 128-d, before the final ReLU, no PCA (FAD practice)."""

    name = "vggish"
    description = (
        "VGGish 128-d (Google AudioSet VGGish in torch, as frechet-audio-distance uses it)"
    )
    sample_rate = 16000
    window_seconds = None
    pooling = "mean over 0.96 s examples (non-overlapping; clips < 0.975 s zero-padded to one)"
    weights_url = (
        "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth"
    )
    weight_source = (
        "torchvggish v0.1 release (harritaylor/torchvggish), converted from Google's TensorFlow "
        "VGGish checkpoint; PCA: vggish_pca_params-970ea276.pth"
    )

    def __init__(self, postprocess: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.postprocess = postprocess

    def load_model(self) -> None:
        if self.model is not None:
            return
        from evaluation.vggish import VGGISH_PCA_URL, VGGish

        path = self.weights_path()
        state = load_torch_weights(path, allow_pickle=False)
        convs = sorted(
            (int(k.split(".")[1]), v.shape[0])
            for k, v in state.items()
            if k.startswith("features.") and k.endswith(".weight")
        )
        model = VGGish(
            widths=tuple(width for _, width in convs),
            hidden=state["embeddings.0.weight"].shape[0],
            embedding_size=state["embeddings.4.weight"].shape[0],
        )
        model.load_state_dict(state, strict=True)
        self._weights_hash = file_sha256(path)[:16]
        if self.postprocess:
            pca_path = (
                path.with_name("vggish_pca_params.pth")
                if self.weights is not None
                else fetch_torch_hub(VGGISH_PCA_URL, "vggish PCA", check_hash=True)
            )
            # the release stores numpy arrays: a pickle, loaded only from the hash-checked file
            model.load_pca(torch.load(pca_path, map_location="cpu", weights_only=False))
            self._weights_hash += "-pca"
        self.model = model.to(self.device).eval()

    @torch.no_grad()
    def frame_embeddings(self, waveform: np.ndarray) -> np.ndarray:
        """`[examples, 128]`: one vector per 0.96 s example of a 16 kHz mono clip."""
        from evaluation.vggish import vggish_log_mel_examples

        examples = vggish_log_mel_examples(waveform).to(self.device)
        frames = torch.cat(
            [
                self.model(examples[i : i + self.batch_size])
                for i in range(0, len(examples), self.batch_size)
            ]
        )
        if self.postprocess:
            frames = self.model.postprocess(frames)
        return frames.cpu().numpy().astype(np.float32)

    def _embed_segments(self, segments: list[np.ndarray]) -> np.ndarray:
        return np.stack([self.frame_embeddings(s).mean(axis=0) for s in segments])


@register
class PannCnn14Embedder(WeightsFileEmbedder):
    """PANN Cnn14 at 32 kHz (`evaluation.panns`), 2048-d, one vector for the whole clip."""

    name = "pann-cnn14"
    description = "PANN Cnn14 2048-d, 32 kHz AudioSet checkpoint (as frechet-audio-distance 'pann')"
    sample_rate = 32000
    window_seconds = None
    pooling = "whole clip: max + mean over time inside the network (its embedding layer)"
    weights_url = "https://zenodo.org/record/3987831/files/Cnn14_mAP%3D0.431.pth"
    weight_source = "Zenodo record 3987831 (Kong et al., PANNs): Cnn14_mAP=0.431.pth"

    def load_model(self) -> None:
        if self.model is not None:
            return
        from evaluation.panns import PANN_CHECKPOINTS, Cnn14, load_cnn14_state

        path = self.weights_path()
        checkpoint = load_torch_weights(path)
        state = checkpoint.get("model", checkpoint)
        widths = tuple(state[f"conv_block{i}.conv1.weight"].shape[0] for i in range(1, 7))
        model = Cnn14(
            PANN_CHECKPOINTS[self.sample_rate], widths, state["fc_audioset.weight"].shape[0]
        )
        load_cnn14_state(model, checkpoint)
        self._weights_hash = file_sha256(path)[:16]
        self.model = model.to(self.device).eval()

    @torch.no_grad()
    def _embed_segments(self, segments: list[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(segments), self.model.fc1.out_features), dtype=np.float32)
        for indices, batch in batches_by_length(segments, self.batch_size):
            out[indices] = self.model(batch.to(self.device)).cpu().numpy()
        return out


@register
class PannCnn14At16kEmbedder(PannCnn14Embedder):
    name = "pann-cnn14-16k"
    description = "PANN Cnn14 2048-d, 16 kHz AudioSet checkpoint (frechet-audio-distance's default)"
    sample_rate = 16000
    weights_url = "https://zenodo.org/record/3987831/files/Cnn14_16k_mAP%3D0.438.pth"
    weight_source = "Zenodo record 3987831 (Kong et al., PANNs): Cnn14_16k_mAP=0.438.pth"


@register
class OpenL3Embedder(WeightsFileEmbedder):
    """OpenL3 music/mel256/512 ported to torch (`evaluation.openl3`); weights via the converter."""

    name = "openl3"
    description = "OpenL3 music mel256 512-d (torch port, as stable-audio-metrics' OpenL3 FD)"
    sample_rate = 48000
    window_seconds = None
    pooling = "mean over 1 s windows every 0.5 s (first centred on 0 s)"
    weight_source = (
        "openl3 package's openl3_audio_mel256_music.h5 (Cramer et al. 2019), converted by "
        "`python -m evaluation.convert_openl3`"
    )

    @classmethod
    def default_weights_path(cls) -> Path:
        from evaluation.convert_openl3 import DEFAULT_OUT

        return DEFAULT_OUT

    @classmethod
    def usable_now(cls) -> tuple[bool, str]:
        path = cls.default_weights_path()
        if path.exists():
            return True, f"converted weights at {path}"
        return False, "run python -m evaluation.convert_openl3 once (needs the openl3 .h5 file)"

    def weights_path(self) -> Path:
        path = self.weights or self.default_weights_path()
        if not path.is_file():
            raise EmbedderUnavailableError(
                f"openl3: no converted weights at {path}; convert them once with "
                "`python -m evaluation.convert_openl3 --h5 openl3_audio_mel256_music.h5` "
                "(see its --help) or pass --embedder-checkpoint FILE"
            )
        return path

    def load_model(self) -> None:
        if self.model is not None:
            return
        from evaluation.openl3 import OpenL3Music

        path = self.weights_path()
        state = load_torch_weights(path)
        widths = tuple(state[f"convs.{i}.weight"].shape[0] for i in (0, 2, 4, 6))
        model = OpenL3Music(widths)
        model.load_state_dict(state, strict=True)
        self._weights_hash = file_sha256(path)[:16]
        self.model = model.to(self.device).eval()

    @torch.no_grad()
    def _embed_segments(self, segments: list[np.ndarray]) -> np.ndarray:
        from evaluation.openl3 import openl3_frames

        out = []
        for segment in segments:
            windows = torch.from_numpy(openl3_frames(segment)).to(self.device)
            vectors = torch.cat(
                [
                    self.model(windows[i : i + self.batch_size])
                    for i in range(0, len(windows), self.batch_size)
                ]
            )
            out.append(vectors.mean(dim=0).cpu().numpy())
        return np.stack(out).astype(np.float32)


@register
class ClapLaionEmbedder(Embedder):
    """LAION CLAP through transformers `ClapModel` (default `laion/larger_clap_music`, from the Hub)."""

    name = "clap-laion"
    description = "LAION CLAP general-audio checkpoint via transformers ClapModel, 512-d"
    default_model_id = "laion/larger_clap_general"
    weight_source = "Hugging Face laion/larger_clap_general (LAION-CLAP, general audio + music)"
    sample_rate = 48000
    window_seconds = 10.0  # = the feature extractor's max length, so it never crops at random
    pooling = "duration-weighted mean of L2-normalised 10 s window embeddings, re-normalised"
    supports_text = True
    normalize = True

    def __init__(self, model_id: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.model_id = model_id or self.default_model_id
        self.model = None

    @classmethod
    def usable_now(cls) -> tuple[bool, str]:
        if hub_cached(cls.default_model_id):
            return True, f"{cls.default_model_id} in the Hugging Face cache"
        return False, f"downloads {cls.default_model_id} once (needs internet)"

    def load_model(self) -> None:
        if self.model is not None:
            return
        from transformers import AutoTokenizer, ClapFeatureExtractor, ClapModel

        try:
            self.model = ClapModel.from_pretrained(self.model_id).to(self.device).eval()
            self.feature_extractor = ClapFeatureExtractor.from_pretrained(self.model_id)
            self.tokenizer = AutoTokenizer.from_pretrained(self.model_id)
        except OSError as error:
            raise EmbedderUnavailableError(
                f"cannot load {self.model_id!r} (clap-laion needs the Hugging Face Hub or a local copy; "
                f"use clap-bundled offline): {error}"
            ) from error
        self.sample_rate = int(self.feature_extractor.sampling_rate)
        self.window_seconds = self.feature_extractor.nb_max_samples / self.sample_rate
        local = Path(self.model_id)
        if local.is_dir() and (local / "model.safetensors").exists():
            self._revision = file_sha256(local / "model.safetensors")[:16]
        else:
            self._revision = str(
                getattr(self.model.config, "_commit_hash", None) or "unknown-revision"
            )[:16]

    @property
    def version(self) -> str:
        return f"{self.code_version}-{self.model_id.replace('/', '--')}-{self._revision}"

    def describe(self) -> dict:
        return {**super().describe(), "checkpoint": self.model_id, "revision": self._revision}

    @staticmethod
    def _features(output) -> torch.Tensor:
        # transformers >= 5 returns a model output whose pooler_output is the projected embedding
        return output.pooler_output if hasattr(output, "pooler_output") else output

    @torch.no_grad()
    def _embed_segments(self, segments: list[np.ndarray]) -> np.ndarray:
        vectors = []
        for start in range(0, len(segments), self.batch_size):
            inputs = self.feature_extractor(
                segments[start : start + self.batch_size],
                sampling_rate=self.sample_rate,
                return_tensors="pt",
            ).to(self.device)
            vectors.append(
                F.normalize(self._features(self.model.get_audio_features(**inputs)), dim=-1).cpu()
            )
        return torch.cat(vectors).float().numpy()

    @torch.no_grad()
    def embed_text(self, texts: list[str]) -> torch.Tensor:
        vectors = []
        for start in range(0, len(texts), self.batch_size):
            inputs = self.tokenizer(
                list(texts[start : start + self.batch_size]), padding=True, return_tensors="pt"
            )
            vectors.append(
                F.normalize(
                    self._features(self.model.get_text_features(**inputs.to(self.device))), dim=-1
                ).cpu()
            )
        return torch.cat(vectors).float()


@register
class ClapLaionMusicEmbedder(ClapLaionEmbedder):
    name = "clap-laion-music"
    description = "LAION CLAP music checkpoint via transformers ClapModel, 512-d (fadtk's pick)"
    default_model_id = "laion/larger_clap_music"
    weight_source = "Hugging Face laion/larger_clap_music (LAION-CLAP, music + speech + general)"


class HubModelEmbedder(Embedder):
    """A transformers model from a Hugging Face id or a local folder (`model_id`)."""

    default_model_id: ClassVar[str]
    weight_source: ClassVar[str] = ""
    hub_patterns: ClassVar[list[str]] = ["*.json", "*.safetensors"]

    def __init__(self, model_id: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.model_id = model_id or self.default_model_id
        self.model = None
        self._revision = "unloaded"

    @classmethod
    def usable_now(cls) -> tuple[bool, str]:
        if hub_cached(cls.default_model_id):
            return True, f"{cls.default_model_id} in the Hugging Face cache"
        return False, f"downloads {cls.default_model_id} once (needs internet)"

    def _folder(self) -> Path:
        folder = hub_snapshot(self.model_id, self.name, self.hub_patterns)
        weights = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
        self._revision = (
            file_sha256(weights[0])[:16] if weights else folder.name[:16] or "unknown-revision"
        )
        return folder

    @property
    def version(self) -> str:
        return f"{self.code_version}-{self.model_id.replace('/', '--')}-{self._revision}"

    def describe(self) -> dict:
        return {
            **super().describe(),
            "checkpoint": self.model_id,
            "revision": self._revision,
            "weight_source": self.weight_source,
        }


# MERT-v1 ships its own modelling code (trust_remote_code). For the v1 checkpoints without the CQT
# branch, deep-norm or attention relaxation, that code is HuBERT with a LayerNorm'd feature
# projection, so transformers' HubertModel runs the same network with no remote code: the config
# is checked field by field and the weights must load with no key missing or left over.
MERT_HUBERT_CONDITIONS = {
    "feature_extractor_cqt": False,
    "deepnorm": False,
    "attention_relax": -1.0,
}


def hubert_config_from_mert(config: dict):
    """A transformers `HubertConfig` equal to a MERT-v1 config, or a clear error if it is not."""
    from transformers import HubertConfig

    for key, wanted in MERT_HUBERT_CONDITIONS.items():
        if key in config and config[key] != wanted:
            raise EmbedderUnavailableError(
                f"this MERT checkpoint sets {key}={config[key]!r}; only HuBERT-compatible MERT-v1 "
                f"checkpoints ({key}={wanted!r}) run without trust_remote_code"
            )
    fields = {
        k: v for k, v in config.items() if k not in ("model_type", "auto_map", "architectures")
    }
    fields.setdefault("feat_proj_layer_norm", True)
    return HubertConfig(**fields)


def remap_legacy_weight_norm(state: dict, expected: set[str]) -> dict:
    """`weight_g`/`weight_v` (old torch weight_norm) -> `parametrizations.weight.original0/1`."""
    out = {}
    for key, value in state.items():
        for old, new in (
            ("weight_g", "parametrizations.weight.original0"),
            ("weight_v", "parametrizations.weight.original1"),
        ):
            if key.endswith(old) and key not in expected:
                key = key[: -len(old)] + new
        out[key] = value
    return out


@register
class MertEmbedder(HubModelEmbedder):
    """MERT-v1-95M (Li et al. 2023) run as transformers HubertModel; one chosen hidden layer."""

    name = "mert-v1-95m"
    description = "MERT-v1-95M 768-d, one transformer layer (default 12 = last), via HubertModel"
    sample_rate = 24000
    window_seconds = 10.0
    pooling = "mean over 75 Hz frames of the chosen layer, duration-weighted over 10 s windows"
    default_model_id = "m-a-p/MERT-v1-95M"
    weight_source = (
        "Hugging Face m-a-p/MERT-v1-95M (weights loaded into HubertModel, no remote code)"
    )
    hub_patterns: ClassVar[list[str]] = ["*.json", "*.safetensors", "pytorch_model.bin"]

    def __init__(self, layer: int = 12, **kwargs) -> None:
        super().__init__(**kwargs)
        self.layer = layer

    def load_model(self) -> None:
        if self.model is not None:
            return
        from transformers import HubertModel

        folder = self._folder()
        config = hubert_config_from_mert(json.loads((folder / "config.json").read_text()))
        if not 0 <= self.layer <= config.num_hidden_layers:
            raise ValueError(
                f"mert-v1-95m layer must be 0-{config.num_hidden_layers}, got {self.layer}"
            )
        weights = sorted(folder.glob("*.safetensors")) or [folder / "pytorch_model.bin"]
        state = load_torch_weights(weights[0])
        model = HubertModel(config)
        expected = set(model.state_dict())
        state = remap_legacy_weight_norm(state, expected)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise EmbedderUnavailableError(
                f"{self.model_id} does not load into HubertModel: missing {sorted(missing)[:4]}, "
                f"unexpected {sorted(unexpected)[:4]}"
            )
        preprocessor = folder / "preprocessor_config.json"
        settings = json.loads(preprocessor.read_text()) if preprocessor.exists() else {}
        self.do_normalize = bool(settings.get("do_normalize", True))
        self.sample_rate = int(
            settings.get("sampling_rate", config.to_dict().get("sample_rate", 24000))
        )
        self.model = model.to(self.device).eval()

    @property
    def version(self) -> str:
        return f"{super().version}-layer{self.layer}"

    def describe(self) -> dict:
        return {**super().describe(), "layer": self.layer}

    @torch.no_grad()
    def _embed_segments(self, segments: list[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(segments), self.model.config.hidden_size), dtype=np.float32)
        for indices, batch in batches_by_length(segments, self.batch_size):
            if self.do_normalize:  # Wav2Vec2FeatureExtractor's zero-mean unit-variance per clip
                batch = (batch - batch.mean(-1, keepdim=True)) / torch.sqrt(
                    batch.var(-1, keepdim=True, correction=0) + 1e-7
                )
            hidden = self.model(batch.to(self.device), output_hidden_states=True).hidden_states
            out[indices] = hidden[self.layer].mean(dim=1).cpu().numpy()
        return out


@register
class EncodecEmbedder(HubModelEmbedder):
    """EnCodec 24 kHz encoder latents (before quantisation) via transformers `EncodecModel`."""

    name = "encodec-24khz"
    description = "EnCodec 24 kHz encoder latents, 128-d at 75 Hz, via transformers EncodecModel"
    sample_rate = 24000
    window_seconds = None
    pooling = "mean over 75 Hz encoder frames of the whole clip"
    default_model_id = "facebook/encodec_24khz"
    weight_source = "Hugging Face facebook/encodec_24khz (Defossez et al. 2022)"

    def load_model(self) -> None:
        if self.model is not None:
            return
        from transformers import EncodecModel

        folder = self._folder()
        self.model = EncodecModel.from_pretrained(folder).to(self.device).eval()
        self.sample_rate = int(self.model.config.sampling_rate)

    @torch.no_grad()
    def _embed_segments(self, segments: list[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(segments), self.model.config.hidden_size), dtype=np.float32)
        for indices, batch in batches_by_length(segments, self.batch_size):
            latents = self.model.encoder(batch[:, None].to(self.device))  # [batch, dim, frames]
            out[indices] = latents.mean(dim=-1).cpu().numpy()
        return out
