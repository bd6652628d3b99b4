"""The checkpoints shipped in `checkpoints/`: float16 weights, a model card, and they load and generate
through the app's loader (the offline defaults of the Loops and Text tabs)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from models.loading import load_pipeline

ROOT = Path(__file__).resolve().parent.parent / "checkpoints"
GENERATORS = ["loops", "text"]


@pytest.mark.parametrize("name", GENERATORS)
def test_bundled_checkpoint_has_float16_weights_and_a_model_card(name):
    folder = ROOT / name
    weights = sorted(folder.glob("*/*.safetensors"))
    assert weights, f"no safetensors in {folder}"
    for path in weights:
        with safe_open(str(path), "pt") as handle:
            assert {str(handle.get_tensor(key).dtype) for key in handle.keys()} == {"torch.float16"}, path  # noqa: SIM118 (safe_open is not iterable)
    card = (folder / "README.md").read_text(encoding="utf-8")
    for heading in ("## Data", "## Training", "## Evaluation", "## Licence"):
        assert heading in card, (name, heading)
    assert "TBD" not in card and "_TEXT" not in card


@pytest.mark.parametrize("name", GENERATORS)
def test_bundled_checkpoint_loads_and_generates_the_asked_length(name, one_torch_thread):
    pipeline = load_pipeline(str(ROOT / name), device="cpu")
    generator = torch.Generator("cpu").manual_seed(0)
    # Tempo-normalised: two-bar windows at the reference tempo, stretched to the asked bpm.
    assert pipeline.reference_bpm == pytest.approx(117.1875) and pipeline.window_seconds == pytest.approx(4.096)
    if name == "text":
        output = pipeline(prompt=["drum loop, 120 BPM"], seconds_total=1.5, num_inference_steps=2, generator=generator,
                          bpm=120.0)
    else:
        output = pipeline(batch_size=1, audio_length_in_s=1.5, num_inference_steps=2, generator=generator, bpm=120.0)
    audio = np.asarray(output.audios)
    assert output.sample_rate == 16000 and audio.shape == (1, 1, 24000)
    assert np.isfinite(audio).all() and 0.5 < np.abs(audio).max() <= 0.99  # peak-normalised, then stretched
