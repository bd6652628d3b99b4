"""teticio/audio-diffusion DDPM repos load with an accurate default sampler, not 20 DDPM steps."""
import json

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from models.loading import TETICIO_DDPM_DEFAULT, load_pipeline
from tests.tiny_models import tiny_mel, tiny_unet


def teticio_folder(folder, scheduler) -> None:
    (folder / "mel").mkdir()
    mel_config = dict(tiny_mel().config)
    mel_config["_class_name"] = "Mel"
    (folder / "mel" / "mel_config.json").write_text(json.dumps(mel_config))
    tiny_unet().save_pretrained(folder / "unet")
    scheduler.save_pretrained(folder / "scheduler")
    index = {"_class_name": "AudioDiffusionPipeline", "_diffusers_version": "0.12.0",
             "mel": ["audio_diffusion", "Mel"], "scheduler": ["diffusers", type(scheduler).__name__],
             "unet": ["diffusers", "UNet2DModel"]}
    (folder / "model_index.json").write_text(json.dumps(index))


def test_a_ddpm_repo_defaults_to_ddim_at_50_steps(tmp_path):
    teticio_folder(tmp_path, DDPMScheduler(num_train_timesteps=1000))
    pipe = load_pipeline(tmp_path, device="cpu")
    assert TETICIO_DDPM_DEFAULT == ("ddim", 50)
    assert isinstance(pipe.scheduler, DDIMScheduler) and pipe.scheduler.config.clip_sample
    assert pipe.scheduler_name == "ddim" and pipe.default_num_inference_steps == 50
    steps = []
    out = pipe(generator=torch.Generator().manual_seed(0), progress_callback=lambda done, total: steps.append(total))
    assert steps[-1] == 50 and np.isfinite(out.audios).all()


def test_a_ddim_repo_and_an_explicit_choice_are_kept(tmp_path):
    teticio_folder(tmp_path, DDIMScheduler())
    pipe = load_pipeline(tmp_path, device="cpu")
    assert pipe.scheduler_name == "ddim" and pipe.default_num_inference_steps == 20


@pytest.mark.parametrize("name", ["ddpm", "dpm++"])
def test_the_caller_can_still_ask_for_another_sampler(tmp_path, name):
    teticio_folder(tmp_path, DDPMScheduler(num_train_timesteps=1000))
    assert load_pipeline(tmp_path, device="cpu", scheduler=name).scheduler_name == name
