"""The calibrated floor stage (`models.floor_stage`, `training.floor_stage`): a per-band downward expander of the
mel that cuts the floor between hits and leaves hits alone; saved beside a checkpoint and applied by the
pipeline it is loaded with."""
import json

import numpy as np
import pytest
import torch

from models.floor_stage import FLOOR_FILE, FloorStage, load_floor_stage
from models.loading import load_pipeline
from tests.tiny_models import tiny_mel_pipeline

BANDS, FRAMES = 8, 64
HITS = (4, 20, 36, 52)


def hits_over_a_floor(floor_db: float = -40.0) -> torch.Tensor:
    """Mel power `[1, 1, BANDS, FRAMES]`: a flat floor `floor_db` below hits of 0 dB at `HITS` that decay by 6 dB a
    frame."""
    level = torch.full((BANDS, FRAMES), floor_db)
    for hit in HITS:
        decay = -6.0 * torch.arange(FRAMES - hit, dtype=torch.float32)
        level[:, hit:] = torch.maximum(level[:, hit:], decay)
    return torch.pow(10.0, level / 10.0)[None, None]


def level_db(power: torch.Tensor) -> torch.Tensor:
    return 10 * torch.log10(power[0, 0] / power.max())


def test_static_curve_is_a_soft_knee_downward_expander_with_a_range_limit():
    stage = FloorStage(thresholds_db=[-30.0], ratio=3.0, knee_db=4.0, max_cut_db=25.0)
    level = torch.tensor([[0.0, -28.0, -30.0, -32.0, -34.0, -40.0, -80.0]])
    gain = stage.static_gain_db(level)[0]
    assert gain[0] == 0 and gain[1] == 0  # at or above threshold + knee / 2: untouched
    assert gain[2] == pytest.approx(-2 * 2.0 ** 2 / 8)  # in the knee: (ratio - 1) (over - knee/2)^2 / (2 knee)
    assert gain[3] == pytest.approx(-4.0) and gain[4] == pytest.approx(-8.0)  # below: (ratio - 1) dB per dB
    assert gain[5] == pytest.approx(-20.0) and gain[6] == pytest.approx(-25.0)  # at most max_cut_db


def test_the_floor_between_hits_falls_and_the_hits_stay_as_they_were():
    mel = hits_over_a_floor(-40.0)
    stage = FloorStage(thresholds_db=[-20.0] * BANDS, ratio=2.0, knee_db=0.0, max_cut_db=30.0, lookahead_frames=1,
                       hold_frames=2, release_frames=2.0)
    out = stage(mel)
    before, after = level_db(mel), level_db(out)
    for hit in HITS:
        # The hit, the frame before it (look-ahead) and its first decay frames above the threshold: untouched.
        assert torch.allclose(after[:, hit - 1 : hit + 4], before[:, hit - 1 : hit + 4], atol=1e-4)
    # Well after a hit's decay (hold, then a release of 2 frames), the floor is cut by (ratio - 1) x 20 dB.
    middle = HITS[0] + 14
    assert after[:, middle].mean() == pytest.approx(-60.0, abs=1.0)
    assert out.shape == mel.shape and out.dtype == mel.dtype


def test_release_closes_the_gain_gradually_after_the_hold():
    stage = FloorStage(thresholds_db=[-10.0], ratio=2.0, knee_db=0.0, max_cut_db=60.0, lookahead_frames=0,
                       hold_frames=1, release_frames=3.0)
    level = torch.tensor([[0.0] * 4 + [-40.0] * 12])
    gain = stage.smooth_gain_db(stage.static_gain_db(level))[0]
    assert (gain[:5] == 0).all()  # the hit, and one frame of hold
    closing = gain[5:]
    assert (closing[1:] <= closing[:-1] + 1e-6).all() and closing[0] > -10.0
    assert closing[-1] == pytest.approx(-30.0, abs=1.0)  # the static gain, (ratio - 1) x 30 dB, after 10 frames


def test_the_stage_round_trips_through_its_file_and_refuses_bad_ones(tmp_path):
    stage = FloorStage(thresholds_db=[-30.0, -35.5], ratio=2.5, report={"real_clips": 3})
    stage.save(tmp_path)
    assert load_floor_stage(tmp_path) == stage
    assert load_floor_stage(tmp_path / "nowhere") is None and load_floor_stage(None) is None
    (tmp_path / FLOOR_FILE).write_text(json.dumps({"thresholds_db": [-30.0], "ratio": 0.5}))
    with pytest.raises(ValueError, match="ratio must be in"):
        load_floor_stage(tmp_path)
    (tmp_path / FLOOR_FILE).write_text(json.dumps({"thresholds_db": [-30.0], "gate": 1}))
    with pytest.raises(ValueError, match="Unknown floor stage field"):
        load_floor_stage(tmp_path)
    with pytest.raises(ValueError, match="2 band thresholds; the mel has 8 bands"):
        stage(hits_over_a_floor())


def test_a_saved_stage_is_applied_by_the_pipeline_it_is_loaded_with_and_can_be_left_off(tmp_path):
    pipe = tiny_mel_pipeline()
    pipe.save_pretrained(tmp_path)
    bands = pipe.mel.config.y_res
    FloorStage(thresholds_db=[-10.0] * bands, ratio=3.0, max_cut_db=40.0).save(tmp_path)

    def take(**load):
        loaded = load_pipeline(tmp_path, device="cpu", **load)
        return loaded, loaded(num_inference_steps=2, generator=torch.Generator().manual_seed(0)).audios[0, 0]

    with_stage, staged = take()
    without, plain = take(floor_stage=False)
    assert isinstance(with_stage.floor_stage, FloorStage) and without.floor_stage is None
    assert staged.shape == plain.shape and not np.allclose(staged, plain)
    # Both are levelled to the same peak: the stage's cut shows as a larger crest factor (quieter floor).
    crest = lambda audio: float(np.abs(audio).max() / np.sqrt(np.mean(audio ** 2)))  # noqa: E731
    assert crest(staged) > crest(plain)
    # Audio to audio keeps the input's own floor: the stage is for clips made from scratch.
    audio = plain.copy()
    varied = [load_pipeline(tmp_path, device="cpu", floor_stage=flag)(
        audio=audio, audio_sampling_rate=pipe.sample_rate, strength=0.5, num_inference_steps=2,
        generator=torch.Generator().manual_seed(0)).audios for flag in (True, False)]
    assert np.allclose(varied[0], varied[1])


def quiet_frames_db(mels: torch.Tensor) -> float:
    """A stand-in floor for tests: the 20th-percentile frame level (bands summed), dB below the loudest frame,
    median over clips."""
    frames = 10 * torch.log10(mels[:, 0].sum(dim=1))
    return float((torch.quantile(frames, 0.2, dim=-1) - frames.amax(dim=-1)).median())


def test_calibration_brings_a_raised_floor_down_to_the_real_one():
    from training.floor_stage import at_tempi, band_loud_levels, fit_offset

    real = torch.cat([hits_over_a_floor(-60.0)] * 4)
    generated = torch.cat([hits_over_a_floor(-40.0)] * 4)
    target, before = quiet_frames_db(real), quiet_frames_db(generated)
    assert before > target + 10
    loud = band_loud_levels(list(real), 10.0, 80.0)
    template = FloorStage(thresholds_db=[0.0], ratio=2.0, max_cut_db=40.0)
    offset = fit_offset(generated, target, loud, template, quiet_frames_db)
    stage = FloorStage(thresholds_db=(loud + offset).tolist(), ratio=2.0, max_cut_db=40.0)
    assert quiet_frames_db(stage(generated)) == pytest.approx(target, abs=0.5)
    # A generated floor already as low as the real one gets the search's lowest thresholds (no cut).
    assert fit_offset(real, target, loud, template, quiet_frames_db) == -60.0
    # Heard at half the tempo (twice as long, cut to the window): the first hit's decay is twice as long.
    slow = at_tempi(generated, [2.0] * 4, FRAMES)
    assert len(slow) == 4 and slow[0].shape == generated[0].shape
    fall = lambda mel: int((level_db(mel[None])[0, 2 * HITS[0] : 2 * HITS[1]] > -30).sum())  # noqa: E731
    assert fall(slow[0]) == pytest.approx(2 * int((level_db(generated[:1])[0, HITS[0]:HITS[1]] > -30).sum()), abs=2)


def test_the_calibration_command_writes_a_stage_that_loading_attaches(tmp_path, capsys):
    from tests.test_take_quality import write_corpus
    from training.floor_stage import main

    corpus, checkpoint = write_corpus(tmp_path / "corpus"), tmp_path / "checkpoint"
    tiny_mel_pipeline().save_pretrained(checkpoint)
    (checkpoint / "train_files.txt").write_text("train/drums/x.flac\n")
    assert main([str(checkpoint), "--corpus", str(corpus), "--seconds", "0.25", "--num-generated", "8",
                 "--steps", "2", "--num-real", "20"]) == 0
    stage = load_pipeline(checkpoint, device="cpu").floor_stage
    assert stage is not None and len(stage.thresholds_db) == 32
    assert stage.report["real_clips"] == 20 and stage.report["generated_windows"] == 8
    assert set(stage.report["floor_between_hits_db"]) >= {"real", "generated_before", "generated_after"}
    assert main([str(tmp_path / "nowhere")]) == 2
    assert "not a checkpoint folder" in capsys.readouterr().err
    assert main([str(checkpoint), "--num-generated", "2"]) == 2
