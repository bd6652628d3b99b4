"""What a workflow returns: the clips it wrote (files, pictures, seeds, settings) and a Markdown status
line, as the page and the named API show them."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import PIL.Image

from studio.trials import Trial

if TYPE_CHECKING:  # studio.take_gate names its outputs' counts with `plural` from here
    from studio.take_gate import TakeRecord


@dataclass
class Output:
    """One generated clip as the page shows it.

    Attributes:
        audio_path: WAV named and tagged with its generation parameters.
        spectrogram: coloured mel spectrogram.
        seed: the seed that re-makes it (with the same model and settings).
        seconds: its length in seconds.
        title: a caption, e.g. "Variation 2 · seed 1235 · 5.94 s".
        loop_path: the tiled seamless loop (WAV with smpl/acid loop points), when one was found.
        bpm: the loop's tempo in BPM.
        loop_info: tempo, bars and repeats, or why there is no loop.
        key_info: the estimated key and the pitch shift applied (when a target key was asked).
        quality: the loop's seam and tempo-stability numbers (`music.loop_quality.LoopQuality.to_dict`).
        settings: everything that made this output (the JSON sidecar in the batch zip).
        take: how the quality gate chose the served take (seeds tried, reasons; `studio.take_gate`), None
            where no gate ran.
    """

    audio_path: Path
    spectrogram: PIL.Image.Image
    seed: int
    seconds: float
    title: str
    loop_path: Path | None = None
    bpm: float | None = None
    loop_info: str = ""
    key_info: str = ""
    quality: dict | None = None
    settings: dict = field(default_factory=dict)
    take: TakeRecord | None = None


@dataclass
class Result:
    """What a generation click returns: outputs, the seed used, notes, a Markdown status line, and what the
    quality gate regenerated ("regenerated: 1 take, noise wash"; "" when nothing)."""

    outputs: list[Output]
    seed: int
    status: str
    notes: list[str] = field(default_factory=list)
    input_spectrogram: PIL.Image.Image | None = None
    zip_path: Path | None = None
    regenerated: str = ""


@dataclass
class TrialResult:
    """A new listening-test trial: the hidden trial (for the page's state) and the two clips to play."""

    trial: Trial
    clip_a: str
    clip_b: str
    status: str


def plural(count: int, noun: str) -> str:
    """"1 step", "20 steps"."""
    return f"{count} {noun}" + ("" if count == 1 else "s")


def status_text(lines: list[str], notes: list[str]) -> str:
    """The status Markdown: `lines`, then each warning as a bullet."""
    return "\n".join(lines + [f"- ⚠️ {note}" for note in notes])
