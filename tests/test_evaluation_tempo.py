"""Tempo adherence (evaluation.tempo): BPM in prompts, tempo estimates of synthetic kick tracks
against the asked BPM, the chance baseline and the `python -m evaluation tempo` command."""

import json

import numpy as np
import pytest

from evaluation.__main__ import main
from evaluation.audio_io import AudioLoadError, write_clip
from evaluation.tempo import ADHERENCE_TOLERANCE, chance_share, tempo_adherence
from music.tempo import bpm_from_prompt, bpm_matches, matching_factor

SAMPLE_RATE_HZ = 16_000
SECONDS = 6.0
# 70 and 140 BPM are a tempo octave apart: the only pairs that match by chance
TRACKS = {"kick-070.wav": 70.0, "kick-090.wav": 90.0, "kick-120.wav": 120.0, "kick-140.wav": 140.0}


def kick_track(bpm: float, seconds: float = SECONDS, rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """A kick drum (pitch-swept decaying sine, 120 ms) on every beat at `bpm` BPM."""
    audio = np.zeros(int(seconds * rate_hz), dtype=np.float32)
    t = np.arange(int(0.12 * rate_hz)) / rate_hz
    hit = np.sin(2 * np.pi * (50 + 80 * np.exp(-t * 40)) * t) * np.exp(-t * 30)
    for beat_s in np.arange(0.0, seconds, 60.0 / bpm):
        start = int(beat_s * rate_hz)
        length = min(len(hit), len(audio) - start)
        audio[start : start + length] += 0.8 * hit[:length]
    return audio


@pytest.fixture(scope="module")
def kick_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kicks")
    for name, bpm in TRACKS.items():
        # one file at 22.05 kHz: tempo_adherence resamples everything to 16 kHz
        rate_hz = 22_050 if bpm == 90.0 else SAMPLE_RATE_HZ
        write_clip(folder / name, kick_track(bpm, rate_hz=rate_hz), rate_hz)
    write_clip(folder / "pad.wav", 0.1 * np.sin(np.linspace(0, 2000, 48_000)), SAMPLE_RATE_HZ)
    return folder


def write_metadata(folder, rows):
    lines = [json.dumps({"file_name": name, "text": text}) for name, text in rows]
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("funk band in F minor, 107 BPM: drums, slap bass, muted electric guitar", 107.0),
        ("94 BPM pop groove in Bb minor with drums", 94.0),
        ("slow hip hop beat, 92.5 bpm, dusty", 92.5),
        ("techno loop at 128bpm", 128.0),
        ("house groove, 124-BPM, four on the floor", 124.0),
        ("breakbeat, BPM: 174", 174.0),
        ("Jungle Break 170 Bpm", 170.0),
        ("ambient pad in C major, no drums", None),
        ("drum loop in 4/4 with 16 bars", None),
        ("bpmless caption 12 bars", None),
        ("0 BPM", None),
    ],
)
def test_bpm_from_prompt(text, expected):
    assert bpm_from_prompt(text) == expected


def test_bpm_match_tolerance_and_octaves():
    assert bpm_matches(120.0, 120.0) and bpm_matches(60.5, 120.0) and bpm_matches(241.0, 120.0)
    assert not bpm_matches(125.5, 120.0)  # 4.6% off: outside the 4% corpus default
    assert bpm_matches(125.5, 120.0, ADHERENCE_TOLERANCE)  # inside 8%
    assert not bpm_matches(90.0, 120.0, ADHERENCE_TOLERANCE)
    assert matching_factor(119.0, 120.0) == 1.0
    assert matching_factor(59.0, 120.0) == 0.5
    assert matching_factor(238.0, 120.0) == 2.0
    assert matching_factor(180.0, 120.0) is None


def test_matching_prompts_give_full_share_above_chance(kick_folder):
    rows = [(name, f"kick drum loop, {bpm:g} BPM, punchy") for name, bpm in TRACKS.items()]
    write_metadata(kick_folder, rows + [("pad.wav", "ambient pad, no pulse")])
    result = tempo_adherence(kick_folder, n_bootstrap=200, seed=3, progress=False)
    assert result.clips_checked == 4
    assert result.clips_skipped == 1 and result.skipped_files == ["pad.wav"]
    assert result.share_within == 1.0
    assert (result.ci_low, result.ci_high) == (1.0, 1.0)
    assert result.octave_errors == 0
    by_file = {clip["file"]: clip for clip in result.per_clip}
    assert set(by_file) == set(TRACKS)
    for name, bpm in TRACKS.items():
        assert by_file[name]["asked_bpm"] == bpm
        assert abs(by_file[name]["estimated_bpm"] - bpm) <= 0.04 * bpm
        assert by_file[name]["match"] and by_file[name]["octave_factor"] == 1.0
    # a derangement pairs 70 with 140 (or back) with probability 1/3 each: expected 1/6
    assert 0.05 < result.chance_share < 0.35
    assert result.chance_share < result.share_within
    summary = result.summary()
    assert "100.0%" in summary and "chance baseline" in summary and "skipped" in summary
    again = tempo_adherence(kick_folder, n_bootstrap=200, seed=3, progress=False)
    assert again.to_dict() == result.to_dict()  # seeded


def test_wrong_tempo_prompts_give_low_share(kick_folder):
    write_metadata(
        kick_folder, [(name, f"drums at {1.3 * bpm:.1f} BPM") for name, bpm in TRACKS.items()]
    )
    result = tempo_adherence(kick_folder, n_bootstrap=200, progress=False)
    assert result.clips_checked == 4 and result.clips_skipped == 0
    assert result.share_within == 0.0
    assert not any(clip["match"] for clip in result.per_clip)


def test_half_tempo_prompt_counts_as_octave_match(kick_folder):
    write_metadata(kick_folder, [("kick-140.wav", "70 BPM half-time"), ("kick-120.wav", "120 BPM")])
    result = tempo_adherence(kick_folder, n_bootstrap=100, progress=False)
    assert result.share_within == 1.0 and result.octave_errors == 1
    factors = {clip["file"]: clip["octave_factor"] for clip in result.per_clip}
    assert factors == {"kick-140.wav": 2.0, "kick-120.wav": 1.0}


def test_chance_share_counts_deranged_matches():
    estimated, asked = np.array([100.0, 200.0]), np.array([100.0, 200.0])
    # two clips: the only derangement swaps them; 100 vs 200 and 200 vs 100 are octave matches
    assert chance_share(estimated, asked, 0.08, permutations=5) == 1.0
    assert chance_share(np.array([90.0, 130.0]), np.array([90.0, 130.0]), 0.08) == 0.0
    assert chance_share(np.array([90.0]), np.array([90.0]), 0.08) is None


def test_bad_and_missing_files(tmp_path):
    write_clip(tmp_path / "silent.wav", np.zeros(16_000), SAMPLE_RATE_HZ)
    write_metadata(tmp_path, [("silent.wav", "120 BPM")])
    with pytest.raises(AudioLoadError):
        tempo_adherence(tmp_path, progress=False)
    with pytest.warns(UserWarning, match="skipping silent.wav"):
        result = tempo_adherence(tmp_path, progress=False, on_error="skip")
    assert result.clips_checked == 0 and result.share_within is None
    assert [bad["file"] for bad in result.bad_files] == ["silent.wav"]
    write_metadata(tmp_path, [("gone.wav", "120 BPM")])
    with pytest.raises(FileNotFoundError, match="gone.wav"):
        tempo_adherence(tmp_path, progress=False)
    (tmp_path / "metadata.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match="metadata.jsonl"):
        tempo_adherence(tmp_path, progress=False)


def test_cli_tempo_writes_json(kick_folder, tmp_path, capsys):
    rows = [("kick-070.wav", "70 BPM"), ("kick-090.wav", "90 BPM")]
    rows += [("kick-120.wav", "156 BPM"), ("kick-140.wav", "182 BPM"), ("pad.wav", "a pad")]
    write_metadata(kick_folder, rows)
    out = tmp_path / "reports" / "tempo.json"
    argv = ["tempo", str(kick_folder), "--tolerance", "0.08", "--bootstrap", "300"]
    assert main(argv + ["--seed", "1", "--out", str(out), "--quiet"]) == 0
    report = json.loads(out.read_text())
    assert report["clips_checked"] == 4 and report["clips_skipped"] == 1
    assert report["share_within"] == 0.5
    assert report["ci_low"] < 0.5 < report["ci_high"]
    assert report["tolerance"] == 0.08 and report["seed"] == 1 and report["n_bootstrap"] == 300
    assert len(report["per_clip"]) == 4
    printed = capsys.readouterr().out
    assert "tempo adherence: 50.0%" in printed and "chance baseline" in printed
    assert "clips checked: 4, skipped (no BPM in prompt): 1" in printed


def test_cli_tempo_fails_without_bpm_prompts(kick_folder, capsys):
    write_metadata(kick_folder, [("pad.wav", "ambient pad")])
    assert main(["tempo", str(kick_folder), "--quiet"]) == 2
    assert "names a BPM" in capsys.readouterr().err


def test_where_keeps_only_clips_whose_row_or_reference_row_matches(kick_folder, tmp_path):
    rows = [
        {"file_name": "kick-070.wav", "text": "70 BPM", "reference": {"subset": "drums"}},
        {"file_name": "kick-090.wav", "text": "90 BPM", "subset": "drums"},
        {"file_name": "kick-120.wav", "text": "156 BPM", "reference": {"subset": "band"}},
        {"file_name": "kick-140.wav", "text": "182 BPM"},
    ]
    (kick_folder / "metadata.jsonl").write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    result = tempo_adherence(kick_folder, n_bootstrap=50, progress=False, where={"subset": "drums"})
    assert result.clips_checked == 2 and result.share_within == 1.0  # the two mismatched ones left out
    assert result.where == {"subset": "drums"}
    out = tmp_path / "drums.json"
    assert main(["tempo", str(kick_folder), "--where", "subset=band", "--out", str(out), "--quiet"]) == 0
    assert json.loads(out.read_text())["share_within"] == 0.0
    with pytest.raises(ValueError, match="matches"):
        tempo_adherence(kick_folder, progress=False, where={"subset": "strings"})
    assert main(["tempo", str(kick_folder), "--where", "subset"]) == 2  # one line: KEY=VALUE
