"""The take-flag benchmark on a tiny model: takes judged by the gate per seed, sampling options reaching the
scheduler and the pipeline, pairing by seed, and a reused folder of other settings refused."""
import json

import pytest
from diffusers import DPMSolverMultistepScheduler

from benchmarks import bench_take_flags
from tests.tiny_models import tiny_mel_pipeline


def test_scheduler_and_pipeline_options_reach_the_sampler():
    pipeline = tiny_mel_pipeline()
    pipeline.scheduler = DPMSolverMultistepScheduler(use_karras_sigmas=True, prediction_type="v_prediction")
    bench_take_flags.apply_options(pipeline, {"sigma_max": 5.0}, {"perturbed_attention_scale": 2.0})
    pipeline.scheduler.set_timesteps(4)
    assert float(pipeline.scheduler.sigmas[0]) == pytest.approx(5.0)
    assert pipeline.config.perturbed_attention_scale == 2.0


def test_takes_are_judged_per_seed_and_paired_with_a_baseline(tmp_path):
    tiny_mel_pipeline().save_pretrained(tmp_path / "loops")
    common = [str(tmp_path / "loops"), "--num", "3", "--seconds", "1", "--steps", "2", "--work-dir", str(tmp_path)]
    bench_take_flags.main([*common, "--out", str(tmp_path / "base.json")])
    base = json.loads((tmp_path / "base.json").read_text())
    assert [take["seed"] for take in base["per_take"]] == [0, 1, 2]
    assert base["flagged"] == sum(bool(take["reasons"]) for take in base["per_take"])
    assert 0 <= base["ci95"][0] <= base["share"] <= base["ci95"][1] <= 1
    bench_take_flags.main([*common, "--reuse", str(tmp_path / "steps2"), "--baseline", str(tmp_path / "base.json"),
                           "--out", str(tmp_path / "again.json")])
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["per_take"] == base["per_take"]
    assert again["paired_with_baseline"] == {"seeds": 3, "baseline_flagged": base["flagged"],
                                             "flagged": base["flagged"], "both": base["flagged"], "fixed": 0,
                                             "new": 0}


def test_a_reused_folder_of_other_settings_is_refused(tmp_path, capsys):
    tiny_mel_pipeline().save_pretrained(tmp_path / "loops")
    bench_take_flags.main([str(tmp_path / "loops"), "--num", "2", "--seconds", "1", "--steps", "2",
                           "--work-dir", str(tmp_path)])
    with pytest.raises(SystemExit) as raised:
        bench_take_flags.main([str(tmp_path / "loops"), "--num", "2", "--seconds", "1", "--steps", "3",
                               "--reuse", str(tmp_path / "steps2")])
    assert raised.value.code == 2
    assert "was made with" in capsys.readouterr().err


def test_a_reused_folder_is_judged_without_loading_the_pipeline(tmp_path, monkeypatch):
    tiny_mel_pipeline().save_pretrained(tmp_path / "loops")
    common = [str(tmp_path / "loops"), "--num", "2", "--seconds", "1", "--work-dir", str(tmp_path)]
    bench_take_flags.main([*common, "--steps", "2", "--out", str(tmp_path / "base.json")])

    def refuse(*args, **kwargs):
        raise AssertionError("--reuse loaded the pipeline")

    monkeypatch.setattr(bench_take_flags, "load_pipeline", refuse)
    bench_take_flags.main([*common, "--reuse", str(tmp_path / "steps2"), "--out", str(tmp_path / "again.json")])
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["steps"] == 2  # the folder's own count
    assert again["per_take"] == json.loads((tmp_path / "base.json").read_text())["per_take"]
