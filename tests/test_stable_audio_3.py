"""Stable Audio 3 behind the generator interface, on a tiny random `StableAudio3Pipeline` of the real
classes saved to a folder and loaded like the hub models: every mode, exact durations, sample rate,
seeds, progress, clear errors (bad input, offline, gated, out of memory), and `evaluation compare`."""
import warnings

import numpy as np
import pytest
import torch
from diffusers import StableAudio3Pipeline
from huggingface_hub.errors import GatedRepoError

from models.backends import load_generator
from models.generator import GenerationRequest
from models.hub import ModelUnavailableError
from models.stable_audio_3 import StableAudio3Backend, regions_to_regenerate
from tests.tiny_hub_models import SA3_SAMPLE_RATE, tiny_stable_audio_3

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def sa3_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-stable-audio-3")
    tiny_stable_audio_3().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def sa3(sa3_folder):
    return load_generator(sa3_folder, device="cpu")


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    time = np.arange(4000) / SA3_SAMPLE_RATE
    return (0.4 * np.sin(2 * np.pi * 220 * time)).astype(np.float32)


def test_loads_as_a_stable_audio_3_backend_with_its_capabilities(sa3):
    assert isinstance(sa3, StableAudio3Backend)
    capabilities = sa3.capabilities
    assert capabilities.text and capabilities.audio_to_audio and capabilities.inpaint and capabilities.continuation
    assert not capabilities.unconditional
    assert (capabilities.sample_rate, capabilities.channels, capabilities.max_duration_s) == (SA3_SAMPLE_RATE, 2, 4.0)
    assert capabilities.default_steps == 8  # the distilled sampler


@pytest.mark.parametrize("seconds", [0.29, 1.0])
def test_text_to_audio_is_exactly_the_asked_duration_and_reproducible(sa3, seconds):
    steps_seen = []
    first = sa3.generate(GenerationRequest("warm piano", duration_s=seconds, generator=seeded(1), steps=2,
                         progress_callback=lambda done, total: steps_seen.append((done, total))))
    again = sa3.generate(GenerationRequest("warm piano", duration_s=seconds, generator=seeded(1), steps=2))
    other = sa3.generate(GenerationRequest("warm piano", duration_s=seconds, generator=seeded(2), steps=2))
    assert first.audios.shape == (1, 2, round(seconds * SA3_SAMPLE_RATE)) and first.audios.dtype == np.float32
    assert first.sample_rate == SA3_SAMPLE_RATE and len(first.images) == 1
    assert steps_seen == [(1, 2), (2, 2)]
    np.testing.assert_array_equal(first.audios, again.audios)
    assert not np.allclose(first.audios, other.audios)
    assert first.settings["duration_s"] == pytest.approx(seconds) and first.settings["steps"] == 2


def test_audio_to_audio_keeps_the_input_length_and_strength_moves_away(sa3, clip):
    def vary(strength):
        return sa3.generate(GenerationRequest("drum loop", audio=clip, audio_sampling_rate=SA3_SAMPLE_RATE,
                                              strength=strength,
                            generator=seeded(3), steps=2)).audios

    low, high = vary(0.05), vary(1.0)
    assert low.shape == high.shape == (1, 2, clip.size)
    assert not np.allclose(low, high)  # init_noise_level reaches the model


def test_inpainting_and_continuation_through_the_interface(sa3, clip):
    inpainted = sa3.generate(GenerationRequest("snare", audio=clip, audio_sampling_rate=SA3_SAMPLE_RATE,
                             keep_regions_in_s=[(0.0, 0.2), (0.35, 0.5)], generator=seeded(), steps=2))
    assert inpainted.audios.shape == (1, 2, clip.size)
    continued = sa3.generate(GenerationRequest("snare", audio=clip, audio_sampling_rate=16_000, extend_in_s=0.3,
                                               num_outputs=2,
                             generator=[seeded(1), seeded(2)], steps=2))
    assert continued.audios.shape == (2, 2, clip.size // 2 + round(0.3 * SA3_SAMPLE_RATE))
    assert not np.allclose(continued.audios[0], continued.audios[1])


def test_regions_to_regenerate_are_the_gaps_and_the_extension():
    assert regions_to_regenerate([(0.0, 0.2), (0.35, 0.5)], 0.5, 0.5) == [(0.2, 0.35)]
    assert regions_to_regenerate([(0.1, 0.3)], 0.5, 0.5) == [(0.0, 0.1), (0.3, 0.5)]
    assert regions_to_regenerate(None, 0.5, 0.8) == [(0.5, 0.8)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prompt": None, "duration_s": 1.0}, "needs a prompt"),
        ({"duration_s": 5.0}, r"at most 4 s .*duration conditioning"),
        ({"duration_s": -1.0}, "duration_s must be a positive"),
        ({"duration_s": 1.0, "steps": 0}, r"steps must be an integer in \[1, 1000\]"),
        ({"duration_s": 1.0, "seconds_start": 2.0}, "seconds_start must be 0"),
        ({"audio": np.zeros(800) + 0.1, "audio_sampling_rate": SA3_SAMPLE_RATE, "strength": 0.0}, r"\(0, 1\]"),
        ({"audio": np.zeros(800) + 0.1, "audio_sampling_rate": SA3_SAMPLE_RATE, "duration_s": 1.0},
         "duration_s applies to generation from scratch"),
        ({"audio": np.zeros(800) + 0.1, "audio_sampling_rate": 100}, "sample rate"),
        ({"audio": np.array([0.1, np.nan]), "audio_sampling_rate": SA3_SAMPLE_RATE}, "NaN"),
        ({"audio": np.zeros(800) + 0.1, "audio_sampling_rate": SA3_SAMPLE_RATE, "keep_regions_in_s": [(0, 1.0)]},
         "nothing is left to generate"),
    ],
)
def test_bad_requests_raise_value_errors_naming_them(sa3, kwargs, message):
    kwargs = {"prompt": "piano", "steps": 1, **kwargs}
    with pytest.raises(ValueError, match=message):
        sa3.generate(GenerationRequest(**kwargs))


def test_offline_gated_and_out_of_memory_are_explained(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelUnavailableError, match="unreachable"):
        load_generator("stabilityai/stable-audio-3-small-music", device="cpu")

    gated = GatedRepoError.__new__(GatedRepoError)
    Exception.__init__(gated, "401 Client Error: access to this model is restricted.")

    def refuse(*args, **kwargs):
        raise OSError("Cannot load model") from gated

    monkeypatch.setattr(StableAudio3Pipeline, "from_pretrained", refuse)
    with pytest.raises(ModelUnavailableError, match="gated.*licence"):
        StableAudio3Backend.from_pretrained("stabilityai/stable-audio-3-medium", device="cpu")

    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(StableAudio3Pipeline, "from_pretrained", out_of_memory)
    with pytest.raises(ModelUnavailableError, match="does not fit in GPU memory.*small-music"):
        StableAudio3Backend.from_pretrained("stabilityai/stable-audio-3-medium", device="cpu")


def test_evaluation_compare_generates_and_scores_a_tiny_stable_audio_3_folder(sa3_folder, tmp_path, monkeypatch):
    # every metric shown whatever the measured ladder table says (tests/test_evaluation_ladder.py covers withholding)
    monkeypatch.setattr("evaluation.ladder.MIN_N_FILE", tmp_path / "no-table.json")
    from evaluation.compare import compare
    from tests.test_evaluation_pipeline import write_folder

    captions = [f"drum loop number {i}" for i in range(6)]
    reference = write_folder(tmp_path / "reference", range(100, 106), seconds=0.5, captions=captions)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = compare([str(sa3_folder)], reference, out_dir=tmp_path / "report", embedder="mel-stats",
                         num_clips=3, num_inference_steps=2, seconds_total=0.5, n_bootstrap=20,
                         use_cache=False, progress=False, device="cpu")
    generated = sorted((tmp_path / "report").rglob("clip_*.flac"))
    assert len(generated) == 3
    import soundfile as sf

    info = sf.info(generated[0])
    assert (info.samplerate, info.channels, info.frames) == (SA3_SAMPLE_RATE, 2, round(0.5 * SA3_SAMPLE_RATE))
    (result,) = report["candidates"]
    assert result["source"] != "folder of audio" and result["distances"]["fad"]
    assert all(np.isfinite(value) for value in result["distances"]["fad"].values() if isinstance(value, float))
