"""Synthetic one-shots and kits shared by the corpus tests (no Debian package needed).

Holds no tests itself; named test_corpus_* to live with them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from scripts.corpus.drumkits import DrumKit, DrumVoice, SampleLayer
from scripts.corpus.licenses import PERMISSIVE, SHARE_ALIKE, SourceLicense

ONE_SHOT_RATE = 44100

SYNTHETIC_LICENSE = SourceLicense("test:kit", "Synthetic test kit", "CC0-1.0", PERMISSIVE,
                                  "tests", "tests/", "generated in the test")
SYNTHETIC_SA_LICENSE = SourceLicense("test:sa-kit", "Synthetic GPL kit", "GPL-2.0-only",
                                     SHARE_ALIKE, "tests", "tests/", "generated in the test")


def write_one_shot(path: Path, kind: str, amplitude: float = 0.8) -> Path:
    """Write a synthetic drum one-shot (kick, snare, hat, open hat, tone) as a 44.1 kHz WAV."""
    rng = np.random.default_rng(sum(map(ord, kind)))
    durations = {"kick": 0.25, "snare": 0.2, "hat": 0.05, "open_hat": 0.5, "tone": 0.3}
    t = np.arange(int(durations[kind] * ONE_SHOT_RATE)) / ONE_SHOT_RATE
    if kind == "kick":
        audio = np.sin(2 * np.pi * (50 + 80 * np.exp(-t * 30)) * t) * np.exp(-t * 14)
    elif kind == "tone":
        audio = np.sin(2 * np.pi * 1000 * t) * np.exp(-t * 10)
    else:
        noise = rng.standard_normal(len(t))
        decay = {"snare": 18.0, "hat": 60.0, "open_hat": 5.0}[kind]
        audio = noise * np.exp(-t * decay)
    audio = amplitude * audio / np.max(np.abs(audio))
    sf.write(str(path), audio.astype(np.float32), ONE_SHOT_RATE)
    return path


def synthetic_kit(folder: Path, kit_id: str = "test:kit", style: str = "electronic",
                  license: SourceLicense = SYNTHETIC_LICENSE) -> DrumKit:
    """A playable kit of synthetic one-shots; the snare has a soft and a hard layer."""
    folder.mkdir(parents=True, exist_ok=True)

    def voice(role: str, kind: str) -> tuple[DrumVoice, ...]:
        path = write_one_shot(folder / f"{role}.wav", kind)
        return (DrumVoice(role, role, (SampleLayer(str(path)),)),)

    soft = write_one_shot(folder / "snare_soft.wav", "snare", amplitude=0.2)
    hard = write_one_shot(folder / "snare_hard.wav", "snare", amplitude=0.9)
    voices = {
        "kick": voice("kick", "kick"),
        "snare": (DrumVoice("snare", "snare", (SampleLayer(str(soft), 0.0, 0.5),
                                               SampleLayer(str(hard), 0.5, 1.0))),),
        "hat_closed": voice("hat_closed", "hat"),
        "hat_open": voice("hat_open", "open_hat"),
        "clap": voice("clap", "snare"),
        "ride": voice("ride", "tone"),
    }
    return DrumKit(kit_id, "synthetic kit", style, voices, license)
