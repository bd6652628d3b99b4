"""The app offers only what the picked model can do: the Audio to audio modes and the Text to audio
duration limit come from the backend's capabilities (`models.backends.as_generator`)."""
from __future__ import annotations

import random

import pytest

import app
from models.backends import as_generator
from models.loading import load_pipeline
from studio.outputs import OutputStore
from studio.trials import AnswerLog
from tests.test_app_support import LOOPS, TEXT, save_checkpoints, write_real_clips
from webapp.handlers import MODES, Studio, StudioLimits
from webapp.registry import ModelRegistry

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SAO = "stabilityai/stable-audio-open-1.0"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return save_checkpoints(tmp_path_factory.mktemp("offers"))


def studio_with(tmp_path, checkpoints, loader=load_pipeline) -> Studio:
    registry = ModelRegistry(bundled_dir=checkpoints, model_dirs=[], device="cpu", max_loaded=3,
                             hub_models={SAO: True}, loader=loader)
    return Studio(registry, OutputStore(tmp_path / "outputs"), StudioLimits(), AnswerLog(tmp_path / "answers.csv"),
                  real_dir=write_real_clips(tmp_path / "real"), rng=random.Random(0))


def test_text_duration_limit_follows_the_model(tmp_path, checkpoints):
    studio = studio_with(tmp_path, checkpoints)
    longest = as_generator(studio.registry.load(TEXT)).capabilities.max_duration_s
    assert longest < studio.limits.max_seconds  # the tiny text model, like the bundled one, refuses 60 s
    modes, offered = studio.model_offers(TEXT)
    assert offered == pytest.approx(longest)
    assert modes == list(MODES)  # the mel pipelines do every audio mode


def test_a_variations_only_model_offers_only_variation(tmp_path, checkpoints):
    pytest.importorskip("torchsde")
    from models.stable_audio import StableAudioOpenPipeline
    from tests.test_stable_audio import tiny_pipeline

    def loader(source, device=None):
        return StableAudioOpenPipeline(tiny_pipeline()) if source == SAO else load_pipeline(source, device=device)

    studio = studio_with(tmp_path, checkpoints, loader)
    label = next(label for label in studio.registry.labels() if label.startswith(SAO))
    # Not downloaded yet: everything is offered, nothing is loaded by looking.
    assert studio.model_offers(label) == (list(MODES), studio.limits.max_seconds)
    assert not studio.registry.is_loaded(label)
    studio.registry.load(label)
    modes, _ = studio.model_offers(label)
    assert modes == ["variation"]
    assert studio.model_offers(LOOPS)[0] == list(MODES)


def test_the_app_opens_with_the_default_models_limits(tmp_path, checkpoints):
    args = app.parse_args([
        "--checkpoints-dir", str(checkpoints), "--model-dir", str(tmp_path / "runs"),
        "--real-dir", str(write_real_clips(tmp_path / "real")), "--output-dir", str(tmp_path / "outputs"),
        "--device", "cpu", "--preload",
    ])
    demo, studio = app.create(args)
    longest = studio.model_offers(TEXT)[1]
    sliders = [block for block in demo.blocks.values() if getattr(block, "label", None) == "Duration (s)"]
    assert [slider.maximum for slider in sliders] == [pytest.approx(longest)]
    assert longest < studio.limits.max_seconds
