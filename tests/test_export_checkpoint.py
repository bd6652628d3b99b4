"""`scripts/export_checkpoint.py`: a training checkpoint becomes a float16 pipeline folder that loads and generates."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from models.loading import load_pipeline
from scripts.export_checkpoint import main
from tests.tiny_models import tiny_mel_pipeline, tiny_text_pipeline


@pytest.mark.parametrize("make", [tiny_mel_pipeline, tiny_text_pipeline], ids=["unconditional", "text"])
def test_export_writes_float16_weights_that_load_and_generate(tmp_path, make):
    checkpoint = tmp_path / "runs" / "checkpoint-0000010"
    make().save_pretrained(checkpoint)
    (checkpoint / "training_info.json").write_text('{"step": 10}')
    (checkpoint / "training_state").mkdir()
    out = tmp_path / "checkpoints" / "model"
    out.mkdir(parents=True)
    (out / "README.md").write_text("# card\n")

    assert main([str(checkpoint), str(out), "--seeds", "1", "--steps", "2"]) == 0

    with safe_open(str(out / "unet" / "diffusion_pytorch_model.safetensors"), "pt") as weights:
        assert {str(weights.get_tensor(key).dtype) for key in weights.keys()} == {"torch.float16"}  # noqa: SIM118
    assert not (out / "training_state").exists()
    assert (out / "README.md").read_text() == "# card\n"  # the hand-written model card survives
    assert json.loads((out / "training_info.json").read_text()) == {"step": 10}
    measured = json.loads((out / "export.json").read_text())
    assert 0.0 <= measured["float16_mean_abs_image_error"] <= 0.02
    pipeline = load_pipeline(str(out), device="cpu")
    assert next(pipeline.unet.parameters()).dtype == torch.float32  # upcast for CPU inference


def test_export_refuses_a_folder_that_is_not_a_pipeline(tmp_path, capsys):
    assert main([str(tmp_path), str(tmp_path / "out")]) == 2
    assert "no model_index.json" in capsys.readouterr().err
