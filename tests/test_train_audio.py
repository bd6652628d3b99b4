"""Synthetic training folders for the trainer's tests (sines, noise bursts, clicks at a tempo, with captions in
wav, flac, ogg and mp3), and checks that they are what they claim."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SAMPLE_RATE = 8000


def sine(seconds: float, frequency: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    time = np.arange(round(seconds * sample_rate)) / sample_rate
    return (0.4 * np.sin(2 * np.pi * frequency * time)).astype(np.float32)


def noise_bursts(seconds: float, seed: int, every_s: float = 0.25, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    time = np.arange(round(seconds * sample_rate)) / sample_rate
    noise = np.random.default_rng(seed).standard_normal(time.size)
    return (0.3 * noise * (np.mod(time, every_s) < 0.05)).astype(np.float32)


def clicks(seconds: float, bpm: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    audio = np.zeros(round(seconds * sample_rate), dtype=np.float32)
    period = round(sample_rate * 60 / bpm)
    for start in range(0, audio.size, period):
        burst = audio[start:start + 40]
        burst[:] = 0.9 * np.exp(-np.arange(burst.size) / 8.0)
    return audio


FORMATS = ("wav", "flac", "ogg", "mp3")


def synthetic_clips(count: int = 9) -> list[tuple[str, np.ndarray, str]]:
    """`count` (file name, audio, caption) triples of 0.8 s and up, cycling sines, noise bursts and clicks
    (and, independently, the four formats)."""
    clips = []
    for index in range(count):
        seconds = 0.8 + 0.1 * index
        extension = FORMATS[index % len(FORMATS)]
        kind = index % 3
        if kind == 0:
            frequency = 220 + 110 * index
            clips.append((f"sine-{index}.{extension}", sine(seconds, frequency), f"sine tone at {frequency} Hz"))
        elif kind == 1:
            clips.append((f"noise-{index}.{extension}", noise_bursts(seconds, index),
                          "noise bursts every quarter second"))
        else:
            bpm = 120 + 20 * index
            clips.append((f"clicks-{index}.{extension}", clicks(seconds, bpm), f"clicks at {bpm} BPM"))
    return clips


def write_folder(folder: Path, clips: list[tuple[str, np.ndarray, str]], captions: bool = True,
                 sample_rate: int = SAMPLE_RATE) -> Path:
    """Write clips (and a metadata.jsonl with `file_name`, `text` and an extra field) into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, audio, caption in clips:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        sf.write(folder / name, audio, sample_rate)
        rows.append({"file_name": name, "text": caption, "kind": name.split("-")[0]})
    if captions:
        (folder / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


def test_synthetic_clips_are_what_their_captions_say(tmp_path):
    from music.audio import load_audio

    folder = write_folder(tmp_path, synthetic_clips(6))
    for name, audio, caption in synthetic_clips(6):
        loaded = load_audio(folder / name, SAMPLE_RATE)
        # Lossy formats pad and smear a little; the length stays within 0.1 s.
        assert abs(len(loaded) - len(audio)) < 0.1 * SAMPLE_RATE
        if name.startswith("sine"):
            spectrum = np.abs(np.fft.rfft(audio))
            assert np.fft.rfftfreq(audio.size, 1 / SAMPLE_RATE)[spectrum.argmax()] == pytest.approx(
                float(caption.split()[3]), abs=2)
        if name.startswith("clicks"):
            onsets = np.flatnonzero(np.diff((audio > 0.5).astype(int)) == 1) + 1
            assert np.allclose(np.diff(np.r_[0, onsets]), SAMPLE_RATE * 60 / float(caption.split()[2]), atol=1)
    rows = [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]
    assert [row["file_name"] for row in rows] == [name for name, _, _ in synthetic_clips(6)]
