"""The Loops and Text to audio sampling defaults live in one place each and every entry point uses them:
steps in each checkpoint's `model_index.json` (`default_num_inference_steps`; the requests, the page's
handlers and the API ask for 0, the model's own), guidance in `studio.requests`, the bundled loops model's
Karras sigmas in its saved scheduler config, the bundled text model's guidance interval in its
`model_index.json`. Chosen by `benchmarks/bench_quality.py` against real
clips (README, "Sampling defaults and speed")."""
import inspect

from models.loading import load_pipeline
from studio.requests import (
    DEFAULT_GUIDANCE,
    MODEL_DEFAULT_STEPS,
    LoopsRequest,
    TextToAudioRequest,
)
from webapp.api import StudioAPI
from webapp.handlers import Studio


def test_requests_ask_for_the_models_own_steps_and_guidance_three():
    assert (MODEL_DEFAULT_STEPS, DEFAULT_GUIDANCE) == (0, 3.0)
    assert LoopsRequest(model="m").steps == MODEL_DEFAULT_STEPS
    text = TextToAudioRequest(model="m", prompt="drums")
    assert (text.steps, text.guidance_scale) == (MODEL_DEFAULT_STEPS, DEFAULT_GUIDANCE)


def test_the_bundled_checkpoints_carry_their_steps_loops_ten_text_twelve():
    assert load_pipeline("checkpoints/loops", device="cpu").default_num_inference_steps == 10
    assert load_pipeline("checkpoints/text", device="cpu").default_num_inference_steps == 12


def test_the_page_and_the_api_default_to_the_requests_values():
    for function in (Studio.generate_loops, StudioAPI.loops, Studio.text_to_audio, StudioAPI.text_to_audio):
        parameters = inspect.signature(function).parameters
        assert parameters["steps"].default == MODEL_DEFAULT_STEPS, function.__qualname__
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


def test_steps_zero_runs_each_checkpoints_own_step_count_and_picking_a_model_shows_it(tmp_path):
    from tests.test_app_support import LOOPS, TEXT, make_studio
    from tests.tiny_models import tiny_mel_pipeline, tiny_text_pipeline

    checkpoints = tmp_path / "checkpoints"
    for name, pipeline, steps in (("loops", tiny_mel_pipeline(), 3), ("text", tiny_text_pipeline(), 2)):
        pipeline.set_default_steps(steps)
        pipeline.save_pretrained(checkpoints / name)
    studio = make_studio(tmp_path, checkpoints, max_steps=50)
    api = StudioAPI(studio)
    loops = api.loops(model=LOOPS, seed=1)
    text = api.text_to_audio("drum loop", model=TEXT, seed=1, seconds_total=1.0)
    assert (loops["settings"]["steps"], text["settings"]["steps"]) == (3, 2)
    assert "3 steps" in loops["status"]
    # The page's sliders follow the picked model (its own count, within the server's limit).
    assert (studio.model_default_steps(LOOPS), studio.model_default_steps(TEXT)) == (3, 2)
    assert make_studio(tmp_path / "small", checkpoints, max_steps=2).model_default_steps(LOOPS) == 2
    assert studio.model_default_steps("someone/hub-model", load=False) == 0  # resolved when it runs


def test_a_checkpoints_own_step_count_is_checked_and_saved(tmp_path):
    import pytest

    from models.pipeline_mel_diffusion import MelDiffusionPipeline
    from tests.tiny_models import tiny_mel_pipeline

    pipeline = tiny_mel_pipeline()
    assert pipeline.default_num_inference_steps == 20  # the class's, when a checkpoint names none
    for bad in (0, -1, 2.5, True, 1001):
        with pytest.raises(ValueError, match="default_num_inference_steps"):
            pipeline.set_default_steps(bad)
    pipeline.set_default_steps(6)
    pipeline.save_pretrained(tmp_path / "p")
    assert MelDiffusionPipeline.from_pretrained(tmp_path / "p").default_num_inference_steps == 6
