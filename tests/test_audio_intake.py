"""`music.audio`: the one place audio enters (reader, limits, silence, mixdown, resampling), and
the app's, evaluation's and loop analysis' intake going through it."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from evaluation.audio_io import AudioLoadError, LoadNotes, load_clip
from music import audio as intake
from music.tempo import check_audio, check_sample_rate
from studio.checks import read_upload


def tone(seconds: float, rate: int, channels: int = 1, level: float = 0.5) -> np.ndarray:
    """`[samples, channels]` sine at 440 Hz (soundfile's layout); channel k at level / (k + 1)."""
    t = np.arange(int(seconds * rate)) / rate
    return np.stack([level / (k + 1) * np.sin(2 * np.pi * 440 * t) for k in range(channels)], axis=1).astype(
        np.float32
    )


def test_read_audio_keeps_channels_and_rate(tmp_path):
    path = tmp_path / "stereo.wav"
    data = tone(0.25, 16_000, channels=2)
    sf.write(path, data, 16_000, subtype="FLOAT")
    audio, rate = intake.read_audio(path)
    assert rate == 16_000 and audio.shape == (2, 4000) and audio.dtype == np.float32
    np.testing.assert_array_equal(audio, data.T)


def test_read_audio_mixes_down_and_resamples(tmp_path):
    path = tmp_path / "stereo.wav"
    data = tone(0.5, 44_100, channels=2)
    sf.write(path, data, 44_100, subtype="FLOAT")
    audio, rate = intake.read_audio(path, target_rate=16_000, mono=True)
    assert rate == 16_000 and audio.shape == (1, 8000)
    expected = intake.resample(data.mean(axis=1), 44_100, 16_000)
    np.testing.assert_allclose(audio[0], expected, atol=1e-6)


@pytest.mark.parametrize(
    ("make", "kwargs", "message"),
    [
        (lambda p: p.write_bytes(b""), {}, "empty"),
        (lambda p: p.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 50), {}, "Could not read"),
        (lambda p: sf.write(p, np.zeros(8000, np.float32), 8000), {}, "silent"),
        (lambda p: sf.write(p, np.full(8000, 5e-5, np.float32), 8000), {}, "silent"),
        (lambda p: sf.write(p, tone(3.0, 8000), 8000), {"max_seconds": 2.0}, r"3\.0 s long; at most 2 s"),
        (lambda p: sf.write(p, np.full((800, 10), 0.1, np.float32), 8000), {}, "10 channels"),
        (lambda p: sf.write(p, tone(1.0, 500), 500), {}, "between 1000 and 384000 Hz"),
    ],
)
def test_read_audio_refuses_with_the_file_named(tmp_path, make, kwargs, message):
    path = tmp_path / "clip.wav"
    make(path)
    with pytest.raises(ValueError, match=message):
        intake.read_audio(path, **kwargs)


def test_silence_is_one_threshold_everywhere(tmp_path):
    """A clip at -90 dBFS is silence for the app, evaluation and loop analysis alike; -70 dBFS is not."""
    quiet, audible = tmp_path / "quiet.wav", tmp_path / "audible.wav"
    sf.write(quiet, tone(1.0, 8000, level=10 ** (-90 / 20)), 8000, subtype="FLOAT")
    sf.write(audible, tone(1.0, 8000, level=10 ** (-70 / 20)), 8000, subtype="FLOAT")
    with pytest.raises(ValueError, match="silent"):
        read_upload(quiet, 8000, max_seconds=10.0)
    with pytest.raises(AudioLoadError, match="silent"):
        load_clip(quiet)
    with pytest.raises(ValueError, match="silent"):
        check_audio(sf.read(quiet, dtype="float32")[0])
    assert read_upload(audible, 8000, max_seconds=10.0).mono.size == 8000
    assert load_clip(audible)[0].size == 8000
    assert check_audio(sf.read(audible, dtype="float32")[0]).size == 8000
    # Training data keeps silent files (its windowing skips them), with the models' warning.
    assert intake.load_audio(quiet, 8000).size == 8000


def test_evaluation_and_app_read_the_same_samples(tmp_path):
    path = tmp_path / "stereo.wav"
    sf.write(path, tone(0.5, 22_050, channels=2), 22_050, subtype="FLOAT")
    notes = LoadNotes()
    waveform, rate = load_clip(path, 16_000, notes)
    upload = read_upload(path, 16_000, max_seconds=10.0)
    assert rate == upload.target_sample_rate == 16_000
    np.testing.assert_allclose(waveform, upload.mono, atol=1e-6)
    assert notes.mixed_channels[2] == 1 and notes.resampled_from_hz[22_050] == 1


def test_rate_limits_are_shared():
    assert check_sample_rate(22_050) == 22_050
    with pytest.raises(ValueError, match="between 1000 and 384000 Hz"):
        check_sample_rate(500)
    with pytest.raises(ValueError, match="between 1000 and 384000 Hz"):
        intake.prepare_audio(np.ones(100, np.float32) * 0.1, 400_000, 16_000)
