"""`benchmarks/check_guidance_variants.py`: the guidance rules it swaps into `TextToMelPipeline.combine_guidance`
reduce to plain classifier-free guidance where they should, and change the output where they should."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.check_guidance_variants import projected, rescaled
from models.pipeline_text_to_mel import TextToMelPipeline
from tests.tiny_models import tiny_text_pipeline

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def generate(pipe: TextToMelPipeline) -> np.ndarray:
    return pipe("house drum loop, 124 BPM", seconds_total=0.3, num_inference_steps=2, guidance_scale=3.0,
                generator=torch.Generator().manual_seed(4)).audios


def test_rescale_zero_is_plain_guidance_and_the_other_rules_change_the_take(monkeypatch):
    pipe = tiny_text_pipeline()
    plain = generate(pipe)
    monkeypatch.setattr(TextToMelPipeline, "combine_guidance", rescaled(0.0))
    np.testing.assert_allclose(generate(pipe), plain, atol=1e-6)
    for rule in (rescaled(1.0), projected(0.0)):
        monkeypatch.setattr(TextToMelPipeline, "combine_guidance", rule)
        assert not np.allclose(generate(pipe), plain, atol=1e-4)


def test_projected_guidance_at_scale_one_is_the_conditional_prediction():
    pipe = tiny_text_pipeline()
    latents, uncond, text = (torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(seed))
                             for seed in range(3))
    timestep = torch.tensor(500)
    combined = projected(0.0)(pipe, latents, timestep, uncond, text, 1.0)
    torch.testing.assert_close(combined, text, atol=1e-4, rtol=1e-4)
