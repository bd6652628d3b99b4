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


def test_export_ships_a_weak_model_for_autoguidance_in_float16(tmp_path):
    from tests.test_autoguidance import weak_unet

    checkpoint, weak, out = tmp_path / "main", tmp_path / "weak", tmp_path / "out"
    tiny_mel_pipeline().save_pretrained(checkpoint)
    weak_unet().save_pretrained(weak)

    assert main([str(checkpoint), str(out), "--seeds", "1", "--steps", "2", "--guidance-unet", str(weak),
                 "--autoguidance-scale", "2", "--guidance-interval", "1", "inf"]) == 0

    with safe_open(str(out / "guidance_unet" / "diffusion_pytorch_model.safetensors"), "pt") as weights:
        assert {str(weights.get_tensor(key).dtype) for key in weights.keys()} == {"torch.float16"}  # noqa: SIM118
    assert 0.0 <= json.loads((out / "export.json").read_text())["float16_mean_abs_image_error"] <= 0.02
    pipeline = load_pipeline(str(out), device="cpu")
    assert pipeline.config.autoguidance_scale == 2.0
    assert list(pipeline.config.guidance_interval) == [1.0, float("inf")]
    assert pipeline.autoguidance(None, None).scale == 2.0


def test_export_refuses_a_bad_autoguidance_setting(tmp_path, capsys):
    tiny_mel_pipeline().save_pretrained(tmp_path / "main")
    assert main([str(tmp_path / "main"), str(tmp_path / "out"), "--autoguidance-scale", "2"]) == 2
    assert "needs a guidance_unet" in capsys.readouterr().err
