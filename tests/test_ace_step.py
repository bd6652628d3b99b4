"""ACE-Step 1.5 behind the generator interface, on a tiny random `AceStepPipeline` of the real classes
saved to a folder and loaded like the hub models: every mode, exact durations, seeds, clear errors."""
import numpy as np
import pytest
import torch
from diffusers import AceStepPipeline

from models.ace_step import AceStepBackend
from models.backends import load_generator
from models.generator import GenerationRequest
from models.hub import ModelUnavailableError
from tests.tiny_hub_models import ACE_SAMPLE_RATE, tiny_ace_step

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def ace(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-ace-step")
    tiny_ace_step().save_pretrained(folder)
    return load_generator(folder, device="cpu")


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    time = np.arange(4000) / ACE_SAMPLE_RATE
    return (0.4 * np.sin(2 * np.pi * 220 * time)).astype(np.float32)


def test_text_to_music_is_exact_reproducible_and_seeded(ace):
    assert isinstance(ace, AceStepBackend) and ace.capabilities.audio_to_audio and ace.capabilities.inpaint
    assert (ace.capabilities.sample_rate, ace.capabilities.channels, ace.capabilities.default_steps) == (8000, 2, 8)
    steps_seen = []
    first = ace.generate(GenerationRequest("warm piano", duration_s=0.29, generator=seeded(1), steps=2, bpm=120,
                         progress_callback=lambda done, total: steps_seen.append((done, total))))
    again = ace.generate(GenerationRequest("warm piano", duration_s=0.29, generator=seeded(1), steps=2, bpm=120))
    other = ace.generate(GenerationRequest("warm piano", duration_s=0.29, generator=seeded(2), steps=2, bpm=120))
    assert first.audios.shape == (1, 2, 2320) and first.sample_rate == ACE_SAMPLE_RATE
    assert steps_seen == [(1, 2), (2, 2)] and first.settings["bpm"] == 120
    np.testing.assert_array_equal(first.audios, again.audios)
    assert not np.allclose(first.audios, other.audios)


def test_cover_repaint_and_continuation_through_the_interface(ace, clip):
    common = {"audio": clip, "audio_sampling_rate": ACE_SAMPLE_RATE, "generator": seeded(), "steps": 2}
    assert ace.generate(GenerationRequest("bass", strength=0.5, **common)).audios.shape == (1, 2, clip.size)
    assert ace.generate(GenerationRequest("bass", keep_regions_in_s=[(0.0, 0.2), (0.35, 0.5)],
                                          **common)).audios.shape == (1, 2, clip.size)
    continued = ace.generate(GenerationRequest("bass", extend_in_s=0.25, **common))
    assert continued.audios.shape == (1, 2, clip.size + 2000)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prompt": None, "duration_s": 1.0}, "needs a prompt"),
        ({"duration_s": 601.0}, "at most 600 s"),
        ({"duration_s": 1.0, "negative_prompt": "noise"}, "negative prompt"),
        ({"duration_s": 1.0, "bpm": 500}, r"bpm must be in \[30, 300\]"),
        ({"duration_s": 1.0, "steps": 0}, "steps must be an integer"),
        ({"audio": np.zeros(800) + 0.1, "audio_sampling_rate": ACE_SAMPLE_RATE,
          "keep_regions_in_s": [(0.02, 0.05)]}, "one region at a time"),
    ],
)
def test_bad_requests_raise_value_errors_naming_them(ace, kwargs, message):
    kwargs = {"prompt": "piano", "steps": 1, **kwargs}
    with pytest.raises(ValueError, match=message):
        ace.generate(GenerationRequest(**kwargs))


def test_offline_and_out_of_memory_are_explained(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelUnavailableError, match="unreachable"):
        load_generator("ACE-Step/acestep-v15-xl-turbo-diffusers", device="cpu")

    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(AceStepPipeline, "from_pretrained", out_of_memory)
    with pytest.raises(ModelUnavailableError, match="does not fit in GPU memory"):
        AceStepBackend.from_pretrained("ACE-Step/acestep-v15-xl-turbo-diffusers", device="cpu")
