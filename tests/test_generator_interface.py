"""Every backend behind `models.generator.AudioGenerator`: capabilities, exact durations, seeds,
settings used, and clear errors for modes a backend lacks."""
import numpy as np
import pytest
import torch

from models.backends import MelBackend, as_generator
from models.generator import AudioGenerator, GenerationRequest
from tests.tiny_models import SAMPLE_RATE, drum_like_signal, tiny_mel_pipeline, tiny_text_pipeline


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def loops():
    return as_generator(tiny_mel_pipeline(), name="tiny loops")


@pytest.fixture(scope="module")
def text():
    return as_generator(tiny_text_pipeline(max_seconds=2.0), name="tiny text")


def test_capabilities_say_what_each_backend_can_do(loops, text):
    assert isinstance(loops, MelBackend) and isinstance(loops, AudioGenerator)
    assert loops.capabilities.unconditional and not loops.capabilities.text
    assert text.capabilities.text and not text.capabilities.unconditional
    assert text.capabilities.max_duration_s == 2.0 == text.capabilities.max_piece_s
    assert loops.capabilities.sample_rate == SAMPLE_RATE and loops.capabilities.channels == 1
    assert "inpainting" in loops.capabilities.modes()


@pytest.mark.parametrize("seconds", [0.1, 0.7])
def test_exact_durations_reproducible_seeds_and_settings(loops, text, seconds):
    for backend, prompt in [(loops, None), (text, "drum loop")]:
        first = backend.generate(GenerationRequest(prompt, duration_s=seconds, generator=seeded(1), steps=2))
        again = backend.generate(GenerationRequest(prompt, duration_s=seconds, generator=seeded(1), steps=2))
        assert first.audios.shape == (1, 1, round(seconds * SAMPLE_RATE)) and first.sample_rate == SAMPLE_RATE
        np.testing.assert_array_equal(first.audios, again.audios)
        assert first.settings["steps"] == 2 and first.settings["duration_s"] == pytest.approx(seconds)


def test_audio_modes_through_the_interface(loops):
    clip = drum_like_signal(0.6)
    common = {"audio": clip, "audio_sampling_rate": SAMPLE_RATE, "generator": seeded(), "steps": 2}
    assert loops.generate(GenerationRequest(strength=0.5, **common)).audios.shape == (1, 1, clip.size)
    assert loops.generate(GenerationRequest(keep_regions_in_s=[(0.0, 0.2)], **common)).audios.shape == (1, 1, clip.size)
    assert loops.generate(GenerationRequest(extend_in_s=0.3, **common)).audios.shape == (1, 1,
                                            clip.size + round(0.3 * SAMPLE_RATE))


def test_modes_a_backend_lacks_are_refused_clearly(loops, text):
    with pytest.raises(ValueError, match="does not take text"):
        loops.generate(GenerationRequest("a prompt", duration_s=0.1, steps=1))
    with pytest.raises(ValueError, match="needs a prompt"):
        text.generate(GenerationRequest(None, duration_s=0.1, steps=1))
    with pytest.raises(ValueError, match="duration_s applies to generation from scratch"):
        loops.generate(GenerationRequest(duration_s=0.1, audio=drum_like_signal(0.3),
                                         audio_sampling_rate=SAMPLE_RATE, steps=1))
    with pytest.raises(ValueError, match="No generation backend"):
        as_generator(object())


def test_stable_audio_open_offers_variations_only(tmp_path):
    pytest.importorskip("torchsde")
    from models.stable_audio import StableAudioOpenPipeline
    from tests.test_stable_audio import tiny_pipeline

    backend = as_generator(StableAudioOpenPipeline(tiny_pipeline()))
    assert backend.capabilities.channels == 2 and not backend.capabilities.inpaint
    out = backend.generate(GenerationRequest("piano", duration_s=0.05, generator=seeded(), steps=2))
    assert out.audios.shape == (1, 2, round(0.05 * backend.capabilities.sample_rate))
    with pytest.raises(ValueError, match="cannot inpaint"):
        backend.generate(GenerationRequest("piano", audio=np.zeros(800), audio_sampling_rate=16000,
                                           keep_regions_in_s=[(0, 0.01)]))


def test_a_requested_sampler_is_used_for_that_call_only():
    """A sampler picked by one request must not change the shared (cached) model for the next one."""
    model = as_generator(tiny_mel_pipeline(), name="tiny loops")
    own = model.capabilities.default_scheduler
    other = next(name for name in model.capabilities.schedulers if name != own)
    request = GenerationRequest(duration_s=0.2, generator=seeded(1), steps=3, scheduler=other)
    first = model.generate(request)
    assert first.settings["scheduler"] == other
    assert model.pipeline.scheduler_name == own  # the cached model keeps its own sampler
    default = model.generate(GenerationRequest(duration_s=0.2, generator=seeded(1), steps=3))
    assert default.settings["scheduler"] == own
    assert not np.array_equal(default.audios, first.audios)  # the other sampler really was used
    model.pipeline.set_scheduler(other)  # the same sampler as the pipeline's own gives the same clip
    np.testing.assert_array_equal(model.generate(GenerationRequest(duration_s=0.2, generator=seeded(1), steps=3))
                                  .audios, first.audios)
    with pytest.raises(ValueError, match="cannot use scheduler 'warp'"):
        model.generate(GenerationRequest(duration_s=0.2, steps=1, scheduler="warp"))
