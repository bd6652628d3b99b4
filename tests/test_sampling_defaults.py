"""The Loops and Text to audio sampling defaults live in one place each and every entry point uses them:
steps and guidance in `studio.requests` (the requests, the page's handlers, the API), the bundled loops
model's Karras sigmas in its saved scheduler config, the bundled text model's guidance interval in its
`model_index.json`. Chosen by `benchmarks/bench_quality.py` against real
clips (README, "Sampling defaults and speed")."""
import inspect

from models.loading import load_pipeline
from studio.requests import (
    DEFAULT_GUIDANCE,
    DEFAULT_LOOP_STEPS,
    DEFAULT_TEXT_STEPS,
    LoopsRequest,
    TextToAudioRequest,
)
from webapp.api import StudioAPI
from webapp.handlers import Studio


def test_loops_default_to_ten_steps_text_to_twelve_at_guidance_three():
    assert (DEFAULT_LOOP_STEPS, DEFAULT_TEXT_STEPS, DEFAULT_GUIDANCE) == (10, 12, 3.0)
    assert LoopsRequest(model="m").steps == DEFAULT_LOOP_STEPS
    text = TextToAudioRequest(model="m", prompt="drums")
    assert (text.steps, text.guidance_scale) == (DEFAULT_TEXT_STEPS, DEFAULT_GUIDANCE)


def test_the_page_and_the_api_default_to_the_requests_values():
    for function, steps in ((Studio.generate_loops, DEFAULT_LOOP_STEPS), (StudioAPI.loops, DEFAULT_LOOP_STEPS),
                            (Studio.text_to_audio, DEFAULT_TEXT_STEPS), (StudioAPI.text_to_audio, DEFAULT_TEXT_STEPS)):
        parameters = inspect.signature(function).parameters
        assert parameters["steps"].default == steps, function.__qualname__
        if "guidance_scale" in parameters:
            assert parameters["guidance_scale"].default == DEFAULT_GUIDANCE, function.__qualname__


def test_the_bundled_loops_model_samples_with_karras_sigmas_and_x0_bounded():
    pipeline = load_pipeline("checkpoints/loops", device="cpu")
    assert pipeline.scheduler_name == "dpm++-karras"
    assert pipeline.scheduler.config.use_karras_sigmas and pipeline.scheduler.config.thresholding
    assert load_pipeline("checkpoints/text", device="cpu").scheduler_name == "dpm++"


def test_the_bundled_text_model_guides_only_noise_levels_from_0_9_to_50():
    pipeline = load_pipeline("checkpoints/text", device="cpu")
    assert pipeline.config.guidance_interval == [0.9, 50.0]
