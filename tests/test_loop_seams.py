"""Loop seams (issue 20, item 1): every loop the studio makes wraps without a click, at the clip's own
tempo and after stretching, and stays exactly its bars long with loop points [0, file length).

The clips are synthetic and written here: a sustained tone whose periods do not fit a bar (so a cut at a
bar line lands mid-cycle, at a different phase than the clip's first sample), with noise and decaying
drum hits on every beat: what a tempo-normalised model makes, two bars from a downbeat.
"""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from music.export import ExportSettings, export_loop
from music.loop_quality import seam_spectral_ratio
from music.loops import (
    bar_length_in_samples,
    loop_at_tempo,
    loop_from_downbeat,
    make_loop,
    match_wrap,
    read_loop_points,
    read_wav_metadata,
    seam_jump_ratio,
    stretch_loop,
    write_loop_wav,
)
from music.stretch import time_stretch

RATE = 16_000
REFERENCE_BPM = 117.1875  # the bundled models' tempo: two bars are 65,536 samples at 16 kHz
TEMPOS = (REFERENCE_BPM, 80.0, 140.0, 170.0)


def tone_with_hits(bpm: float, bars: int = 2, seed: int = 0) -> np.ndarray:
    """`bars` bars at `bpm` from a downbeat at sample 0: a 96.1 Hz tone with a third partial (sustained, no
    whole number of periods per bar), faint hiss, and a kick (a decaying sine gliding from 150 to 50 Hz
    with a short noise click) on every beat, accented on one."""
    rng = np.random.default_rng(seed)
    length = bar_length_in_samples(bars, 4, bpm, RATE)
    t = np.arange(length) / RATE
    audio = 0.3 * np.sin(2 * np.pi * 96.1 * t + 0.4) + 0.1 * np.sin(2 * np.pi * 288.3 * t + 1.1)
    audio += 0.002 * rng.standard_normal(length)
    beat = 60.0 / bpm * RATE
    hit_t = np.arange(round(0.2 * RATE)) / RATE
    hit = np.sin(2 * np.pi * np.cumsum(50 + 100 * np.exp(-30 * hit_t)) / RATE) * np.exp(-15 * hit_t)
    hit[: round(0.005 * RATE)] += 0.2 * rng.standard_normal(round(0.005 * RATE))
    for index in range(bars * 4):
        start = round(index * beat)
        end = min(length, start + len(hit))
        audio[start:end] += (0.6 if index % 4 == 0 else 0.3) * hit[: end - start]
    return (0.9 * audio / np.max(np.abs(audio))).astype(np.float32)


def model_clip(bpm: float, seed: int = 0) -> np.ndarray:
    """Two bars made at the reference tempo and stretched (Rubber Band) to `bpm`, as the pipeline does."""
    clip = tone_with_hits(REFERENCE_BPM, seed=seed)
    return time_stretch(clip, RATE, bar_length_in_samples(2, 4, bpm, RATE))


@pytest.mark.parametrize("bpm", TEMPOS, ids=lambda bpm: f"{bpm:g}bpm")
def test_a_clip_from_a_downbeat_wraps_without_a_click_at_its_own_tempo_and_stretched(bpm):
    clip = model_clip(bpm)
    loop = loop_from_downbeat(clip, RATE, bpm, repeats=4)
    cycle = loop.audio[: loop.loop_length]
    # Before the fix the wrap went from the sample before the last bar's downbeat into sample 0: a jump of
    # 5-20 typical steps on this tone.
    assert seam_jump_ratio(cycle) <= 2.0
    assert loop.seam_jump_ratio == pytest.approx(seam_jump_ratio(cycle))
    # Exactly two bars from the downbeat, tiled, nothing shifted.
    assert loop.bars == 2 and loop.loop_length == bar_length_in_samples(2, 4, bpm, RATE)
    assert len(loop.audio) == 4 * loop.loop_length and (loop.loop_start, loop.loop_end) == (0, len(loop.audio))
    middle = slice(round(0.02 * RATE), loop.loop_length - round(0.02 * RATE))
    np.testing.assert_array_equal(cycle[middle], clip[middle])  # only the wrap's few ms are touched


@pytest.mark.parametrize("bpm", TEMPOS, ids=lambda bpm: f"{bpm:g}bpm")
def test_the_spectral_seam_is_no_worse_than_the_old_tail_only_crossfade(bpm):
    clip = model_clip(bpm, seed=1)
    loop = loop_from_downbeat(clip, RATE, bpm)
    crossfade = round(0.010 * RATE)
    old = clip.copy()  # the old cut: the tail faded into the audio before the last bar's downbeat
    downbeat = bar_length_in_samples(1, 4, bpm, RATE)
    ramp = np.arange(1, crossfade + 1) / crossfade
    old[-crossfade:] = np.cos(0.5 * np.pi * ramp) * old[-crossfade:] + np.sin(0.5 * np.pi * ramp) * clip[
        downbeat - crossfade : downbeat]
    assert seam_spectral_ratio(loop.audio[: loop.loop_length], RATE) <= 1.05 * seam_spectral_ratio(old, RATE) + 0.05


@pytest.mark.parametrize("bpm", [80.0, 100.0, 170.0])
def test_a_loop_stretched_circularly_to_another_tempo_wraps_without_a_click(bpm):
    loop = make_loop(tone_with_hits(REFERENCE_BPM, bars=4), RATE, repeats=2, bpm=REFERENCE_BPM, bars=2)
    stretched = stretch_loop(loop, bpm)
    cycle = stretched.audio[: stretched.loop_length]
    assert seam_jump_ratio(cycle) <= 2.0
    assert stretched.loop_length == bar_length_in_samples(2, 4, bpm, RATE)
    assert (stretched.loop_start, stretched.loop_end) == (0, 2 * stretched.loop_length)


def test_a_loop_of_unknown_tempo_asked_at_a_tempo_wraps_without_a_click():
    audio = np.concatenate([tone_with_hits(REFERENCE_BPM, bars=4, seed=2)] * 2)
    loop = loop_at_tempo(audio, RATE, 100.0, repeats=2)
    assert loop.bpm == 100.0 and loop.loop_length == bar_length_in_samples(loop.bars, 4, 100.0, RATE)
    assert seam_jump_ratio(loop.audio[: loop.loop_length]) <= 2.0


@pytest.mark.parametrize("bars", [1, 2])
def test_a_clip_cut_exactly_at_its_bars_or_with_audio_after_them_still_wraps(bars):
    exact = tone_with_hits(140.0, bars=bars, seed=3)
    longer = tone_with_hits(140.0, bars=bars + 1, seed=3)[: len(exact) + round(0.3 * RATE)]
    for clip in (exact, longer):
        loop = loop_from_downbeat(clip, RATE, 140.0, repeats=2)
        assert loop.bars == bars and loop.loop_length == bar_length_in_samples(bars, 4, 140.0, RATE)
        assert seam_jump_ratio(loop.audio[: loop.loop_length]) <= 2.0


@pytest.mark.parametrize("settings", [ExportSettings(), ExportSettings(44_100, 2, "WAV 24-bit")],
                         ids=["plain", "44k-stereo-24bit"])
def test_the_written_file_wraps_without_a_click_and_keeps_its_loop_points(tmp_path, settings):
    loop = loop_from_downbeat(model_clip(100.0), RATE, 100.0, repeats=3)
    path = write_loop_wav(tmp_path / "loop.wav", loop) if settings == ExportSettings() else export_loop(
        tmp_path / "loop", loop, settings)
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    length = bar_length_in_samples(2, 4, 100.0, rate)
    assert audio.shape[0] == 3 * length and read_loop_points(path) == (0, 3 * length)
    assert float(read_wav_metadata(path)["acid_bpm"]) == 100.0 and read_wav_metadata(path)["acid_beats"] == "24"
    for channel in audio.T:
        assert seam_jump_ratio(channel[:length]) <= 2.0


def test_match_wrap_leaves_a_continuous_wrap_alone_and_bounds_a_jump_with_a_short_offset():
    t = np.arange(4000) / RATE
    whole_periods = np.sin(2 * np.pi * 200 * t).astype(np.float32)  # 50 periods: already continuous
    np.testing.assert_array_equal(match_wrap(whole_periods, 40), whole_periods)
    onset = np.zeros(4000, dtype=np.float32)  # silence into an attack at sample 0: a step the signal makes
    onset[:200] = np.sin(0.3 * np.arange(200)) * np.exp(-np.arange(200) / 50)
    np.testing.assert_array_equal(match_wrap(onset, 40), onset)
    jumping = np.sin(2 * np.pi * 201.3 * t + 1.0).astype(np.float32)  # lands mid-period: a click
    assert seam_jump_ratio(jumping) > 5
    matched = match_wrap(jumping, 40)
    assert seam_jump_ratio(matched) <= 1.5
    changed = np.flatnonzero(matched != jumping)
    assert np.all((changed < 40) | (changed >= 4000 - 40))  # only the 40 samples either side of the wrap
    assert np.max(np.abs(matched - jumping)) <= 0.5 * abs(jumping[0] - jumping[-1]) + 1e-6


# ---- through the studio's loops workflow ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """Tiny random loops models on disk: one tempo-normalised (two bars per window, 1875 BPM at 8 kHz), one not."""
    from models.backends import load_generator
    from tests.tiny_models import tiny_mel_pipeline

    folder = tmp_path_factory.mktemp("tiny")
    plain = tiny_mel_pipeline()
    plain.save_pretrained(folder / "plain")
    normalised = tiny_mel_pipeline()
    normalised.register_to_config(reference_bpm=1875.0, beats_per_bar=4)
    normalised.save_pretrained(folder / "normalised")
    return {name: load_generator(str(folder / name), device="cpu") for name in ("plain", "normalised")}


@pytest.mark.parametrize(("name", "bpm"), [("normalised", 150.0), ("plain", 0.0), ("plain", 100.0)])
def test_every_loop_file_the_workflow_writes_wraps_without_a_click(tmp_path, tiny_models, name, bpm):
    from studio.generation import Workspace
    from studio.loops import make_loops
    from studio.model_source import OneModel
    from studio.outputs import OutputStore
    from studio.requests import LoopsRequest, StudioLimits

    workspace = Workspace(OneModel(tiny_models[name], name), OutputStore(tmp_path), StudioLimits())
    result = make_loops(workspace, LoopsRequest(model=name, seed=0, randomize_seed=False, steps=2, bpm=bpm,
                                                variations=2, repeats=2))
    written = [output for output in result.outputs if output.loop_path is not None]
    assert len(written) == 2
    for output in written:
        audio, rate = sf.read(output.loop_path, dtype="float32")
        bars, loop_bpm = int(output.settings["bars"]), float(output.settings["bpm"])
        length = bar_length_in_samples(bars, 4, loop_bpm, rate)
        assert len(audio) == 2 * length and read_loop_points(output.loop_path) == (0, 2 * length)
        if bpm:
            assert loop_bpm == bpm
        assert seam_jump_ratio(audio[:length]) <= 2.0
        assert output.quality["seam_waveform_ratio"] <= 2.0


def test_a_clip_made_only_to_be_looped_is_made_of_whole_bars_in_as_few_windows_as_they_need(tmp_path, tiny_models):
    """A 3.3 s clip at 150 BPM holds two bars (3.2 s) and a tenth of a second that the loop throws away; at the
    tiny model's 1875 BPM it would be 0.264 s, more than its 0.256 s window: only the two bars are made, in one."""
    from studio.generation import Workspace
    from studio.loops import make_loops
    from studio.model_source import OneModel
    from studio.outputs import OutputStore
    from studio.requests import LoopsRequest, StudioLimits

    model = tiny_models["normalised"]
    calls = []
    handle = model.pipeline.unet.register_forward_pre_hook(lambda module, args: calls.append(args[0].shape[0]))
    try:
        workspace = Workspace(OneModel(model, "normalised"), OutputStore(tmp_path), StudioLimits())
        result = make_loops(workspace, LoopsRequest(model="normalised", seed=0, randomize_seed=False, steps=2,
                                                    bpm=150.0, clip_seconds=3.3, repeats=2))
    finally:
        handle.remove()
    assert len(calls) == 2  # two steps of one window
    (output,) = result.outputs
    clip, rate = sf.read(output.audio_path, dtype="float32")
    two_bars = bar_length_in_samples(2, 4, 150.0, rate)
    assert len(clip) == two_bars
    audio, _ = sf.read(output.loop_path, dtype="float32")
    assert output.settings["bars"] == 2 and output.settings["bpm"] == 150.0
    assert len(audio) == 2 * two_bars and read_loop_points(output.loop_path) == (0, 2 * two_bars)
    assert seam_jump_ratio(audio[:two_bars]) <= 2.0


def test_whole_bars_at_any_tempo_need_no_more_frames_than_at_the_reference_tempo():
    """Rounding N bars at the asked tempo to the sample must not make them a sample longer than N bars at the
    reference tempo (a whole extra frame, and an extra window when the bars fill one)."""
    from tests.tiny_models import tiny_mel_pipeline

    pipeline = tiny_mel_pipeline()
    pipeline.register_to_config(reference_bpm=200.0, beats_per_bar=4)  # one bar: 9,600 samples, 150 frames
    for bpm in range(200, 301):
        for bars in (1, 2, 3):
            samples = pipeline.samples_at_reference(bar_length_in_samples(bars, 4, float(bpm), 8000), float(bpm))
            assert pipeline.mel.frames_for_samples(samples) == 150 * bars, (bpm, bars)
            assert abs(samples - bars * 9600) <= 1


def test_a_clip_under_two_bars_keeps_its_length_for_the_seam_after_its_bar():
    from studio.loops import whole_bars_seconds

    assert whole_bars_seconds(2.4, 150.0, 8000) == 2.4  # one bar and a half: one window either way
    assert whole_bars_seconds(3.3, 150.0, 8000) == bar_length_in_samples(2, 4, 150.0, 8000) / 8000
    assert whole_bars_seconds(5.0, 150.0, 8000) == bar_length_in_samples(3, 4, 150.0, 8000) / 8000
