"""The compute budget of one request: clips x windows x denoising steps ("window-steps"), checked
before any generation so that one legal request cannot hold a worker for an hour, and the time it
should take, estimated from the speed this server measured on earlier requests.

A window is one pass of the model over its mel window (4.1 s for the bundled models); a longer clip
is grown window by window, so its cost grows with its length. Stable Audio makes a whole clip in one
window.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from models.generator import Capabilities
from music.export import ExportSettings
from studio.progress import duration_text

# Default window-steps per request: about 4 minutes of the bundled text model on a 2-core CPU at one
# thread (0.4 s per window-step, `benchmarks/results/bundled.json`), 10x that on a GPU.
CPU_MAX_WORK = 600
GPU_MAX_WORK = 6000
# Default bytes of files one request may write (its clips, loops and their zip), in MB (2**20 bytes):
# the largest export a producer needs (4 x 60 s at 48 kHz stereo 24-bit is 66 MB, 132 MB with its zip)
# fits, while 2.5 GB of 192 kHz loops do not.
DEFAULT_MAX_OUTPUT_MB = 256.0
# Headers, loop points and metadata chunks of one file, in bytes (an upper bound).
FILE_OVERHEAD_BYTES = 16 * 1024


def default_max_work(device: str = "auto") -> int:
    """The default budget for the device the app runs on (`--device`)."""
    import torch

    on_gpu = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    return GPU_MAX_WORK if on_gpu else CPU_MAX_WORK


def window_geometry(capabilities: Capabilities) -> tuple[float, float] | None:
    """(first window, each further window) in seconds of a windowed model (the overlap carried into a
    continued window is not new audio); None for models without windows (Stable Audio)."""
    window = capabilities.window_seconds or 0.0
    if window <= 0:
        return None
    return window, max(window - capabilities.window_overlap_s, 1e-3)


def windows_for(capabilities: Capabilities, seconds: float) -> int:
    """Model windows needed for a clip of `seconds` seconds: 1 up to the first window (or the widened window
    a clip a little longer is made in, `Capabilities.window_widening`), then one per further window; 1 for
    models without windows."""
    geometry = window_geometry(capabilities)
    if geometry is None or seconds <= geometry[0] * (1.0 + capabilities.window_widening):
        return 1
    return 1 + math.ceil((seconds - geometry[0]) / geometry[1] - 1e-9)


@dataclass(frozen=True)
class Request:
    """What a request asks for, in the units of its tab.

    Attributes:
        clips: clips made (variations, outputs, the two sides of a listening trial).
        windows: model windows per clip.
        steps: denoising steps per window.
        clips_label, seconds_label, steps_label: the controls that set them, as the tab names them.
        geometry: `window_geometry` of the model (None: the length costs nothing more).
    """

    clips: int
    windows: int
    steps: int
    clips_label: str = "Outputs"
    seconds_label: str = "Duration"
    steps_label: str = "Steps"
    geometry: tuple[float, float] | None = None

    @property
    def work(self) -> int:
        return self.clips * self.windows * self.steps


class Budget:
    """Checks requests against `max_work` window-steps and estimates their time.

    Args:
        max_work: most window-steps one request may ask for.
    """

    def __init__(self, max_work: int = CPU_MAX_WORK) -> None:
        self.max_work = max(1, int(max_work))
        self._seconds_per_step: dict[str, float] = {}
        self._lock = threading.Lock()

    def check(self, request: Request) -> None:
        """Raise `ValueError` naming what to reduce, and to what, when `request` is over the budget."""
        if request.work <= self.max_work:
            return
        options = []
        most_clips = self.max_work // (request.windows * request.steps)
        if 1 <= most_clips < request.clips:
            options.append(f"{request.clips_label} to {most_clips}")
        most_windows = self.max_work // (request.clips * request.steps)
        if request.geometry and 1 <= most_windows < request.windows:
            first, further = request.geometry
            longest = first + (most_windows - 1) * further
            options.append(f"{request.seconds_label} to {math.floor(longest * 10) / 10:g} s or less")
        most_steps = self.max_work // (request.clips * request.windows)
        if 1 <= most_steps < request.steps:
            options.append(f"{request.steps_label} to {most_steps}")
        advice = ("reduce " + ", or ".join(options)) if options else (
            f"reduce {request.clips_label}, {request.seconds_label} and {request.steps_label} together")
        raise ValueError(
            f"This request is too large for this server: {request.clips} clip(s) x {request.windows} window(s) "
            f"x {request.steps} steps = {request.work:,} window-steps, over the limit of {self.max_work:,} "
            f"per request. To fit, {advice}.")

    def record(self, model: str, seconds_per_step: float | None) -> None:
        """Remember the measured speed of `model` (a running average of recent requests)."""
        if not seconds_per_step or not math.isfinite(seconds_per_step):
            return
        with self._lock:
            old = self._seconds_per_step.get(model)
            self._seconds_per_step[model] = seconds_per_step if old is None else 0.7 * old + 0.3 * seconds_per_step

    def estimate_seconds(self, model: str, request: Request) -> float | None:
        """Expected seconds for `request` on `model`, or None before the server has timed that model."""
        speed = self._seconds_per_step.get(model)
        return None if speed is None else speed * request.work

    def estimate_text(self, model: str, request: Request) -> str:
        """"about 40 s" or "" (no estimate yet)."""
        seconds = self.estimate_seconds(model, request)
        return "" if seconds is None else f"about {duration_text(seconds)}"


def audio_file_bytes(seconds: float, sample_rate: int, channels: int, bytes_per_sample: int) -> int:
    """Upper bound of the size of one audio file: `seconds` at `sample_rate` Hz, `channels` channels,
    `bytes_per_sample` bytes per sample, plus its headers."""
    return math.ceil(seconds * sample_rate + 1) * channels * bytes_per_sample + FILE_OVERHEAD_BYTES


@dataclass(frozen=True)
class OutputRequest:
    """The files one request will write, bounded before any work starts.

    Attributes:
        clips: clips made (variations, outputs).
        bytes_per_clip: bytes of every file of one clip (the clip, its loop), an upper bound.
        clips_label: the control that sets `clips`, as the tab names it.
        options: other ways to fit, in words (e.g. "Repeats to 3", "the export rate to model rate").
        zipped: the files are also zipped into one batch file (stored, at worst, at their own size).
        files_per_clip: files written per clip (a clip and its loop: 2).
    """

    clips: int
    bytes_per_clip: int
    clips_label: str = "Outputs"
    options: tuple[str, ...] = ()
    zipped: bool = True
    files_per_clip: int = 1

    @property
    def files(self) -> int:
        return self.clips * self.files_per_clip + (1 if self.zipped else 0)

    @property
    def total_bytes(self) -> int:
        return self.clips * self.bytes_per_clip * (2 if self.zipped else 1)


def megabytes(size: float) -> str:
    """`size` bytes as "12.3 MB" (1 MB = 2**20 bytes)."""
    return f"{size / 2**20:,.1f} MB"


def check_output(request: OutputRequest, max_bytes: int) -> None:
    """Raise `ValueError` naming the limit and what to reduce when `request` would write more than
    `max_bytes` bytes of files."""
    if request.total_bytes <= max_bytes:
        return
    options = []
    most_clips = max_bytes // (request.bytes_per_clip * (2 if request.zipped else 1))
    if 1 <= most_clips < request.clips:
        options.append(f"{request.clips_label} to {most_clips}")
    options += request.options
    advice = ("reduce " + ", or ".join(options)) if options else "ask for shorter clips"
    zipped = " with their zip" if request.zipped else ""
    raise ValueError(
        f"This request would write too much for this server: {request.clips} clip(s) x "
        f"{megabytes(request.bytes_per_clip)} of files{zipped} = {megabytes(request.total_bytes)}, over the "
        f"limit of {megabytes(max_bytes)} of files per request. To fit, {advice}.")


def export_options(export: ExportSettings, model_rate: int) -> tuple[str, ...]:
    """The export settings a request could lower to write fewer bytes, in words."""
    options = []
    if export.sample_rate and export.sample_rate > model_rate:
        options.append(f"Export sample rate to model rate ({model_rate} Hz)")
    if export.channels == 2:
        options.append("Export channels to mono")
    if export.max_bytes_per_sample > 2:
        options.append("Export format to 16-bit")
    return tuple(options)
