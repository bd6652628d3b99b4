"""Shared builders for the app tests (this module holds no tests): tiny random checkpoints saved like
real ones, a studio pointed at them, real clips with captions, a free localhost port, the app running
on that port."""
from __future__ import annotations

import contextlib
import json
import random
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from studio.outputs import OutputStore
from studio.trials import AnswerLog
from tests.tiny_models import SAMPLE_RATE, drum_like_signal, tiny_mel_pipeline, tiny_text_pipeline
from webapp.handlers import Studio, StudioLimits
from webapp.registry import ModelRegistry

LOOPS = "checkpoints/loops · bundled"
LATENT = "checkpoints/latent · bundled"
TEXT = "checkpoints/text · bundled"
CAPTIONS = {"drums/beat-1.flac": "punchy drum loop, 120 BPM", "drums/beat-2.wav": "dusty breakbeat, 90 BPM"}



def save_checkpoints(root: Path) -> Path:
    """`root/checkpoints/{loops,latent,text}`: tiny unconditional, latent and text models, each carrying the
    bundled checkpoints' own step counts (loops 10, text 12); returns the folder."""
    folder = root / "checkpoints"
    if not (folder / "text" / "model_index.json").exists():
        tiny = (("loops", tiny_mel_pipeline(), 10), ("latent", tiny_mel_pipeline(latent=True), 10),
                ("text", tiny_text_pipeline(), 12))
        for name, pipeline, steps in tiny:
            pipeline.set_default_steps(steps)
            pipeline.save_pretrained(folder / name)
    return folder


def write_real_clips(folder: Path) -> Path:
    """Two drum clips (FLAC at 16 kHz stereo, WAV at 8 kHz) with captions in `metadata.jsonl`."""
    (folder / "drums").mkdir(parents=True, exist_ok=True)
    stereo = np.stack([drum_like_signal(1.0, 16_000, seed=1), drum_like_signal(1.0, 16_000, seed=2)], axis=1)
    sf.write(folder / "drums" / "beat-1.flac", stereo, 16_000)
    sf.write(folder / "drums" / "beat-2.wav", drum_like_signal(0.8, SAMPLE_RATE, seed=3), SAMPLE_RATE)
    lines = [json.dumps({"file_name": name, "text": text}) for name, text in CAPTIONS.items()]
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def make_studio(root: Path, checkpoints: Path, seed: int = 0, **limits) -> Studio:
    """A studio on the tiny checkpoints, writing under `root`, with seeded sides and real-clip picks."""
    registry = ModelRegistry(bundled_dir=checkpoints, model_dirs=[], device="cpu", max_loaded=3)
    store = OutputStore(root / "outputs")
    real_dir = write_real_clips(root / "real")
    return Studio(registry, store, StudioLimits(**limits), AnswerLog(root / "answers" / "answers.csv"),
                  real_dir=real_dir, rng=random.Random(seed))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def running_app(root: Path, *options: str, prepare: Callable[[Studio], None] | None = None
                ) -> Iterator[tuple[str, Studio, object]]:
    """The app from its own command line, launched in this process on a free localhost port, on the tiny
    checkpoints of `root/checkpoints` (`save_checkpoints`), with real clips, model and output folders
    under `root`, on the CPU; `options` are further flags. `prepare(studio)` runs before the launch.

    Yields:
        (the page's URL, the `Studio`, the Gradio `Blocks`); the server stops on exit.
    """
    import app

    args = app.parse_args([
        "--host", "127.0.0.1", "--port", str(free_port()), "--checkpoints-dir", str(root / "checkpoints"),
        "--model-dir", str(root / "runs"), "--real-dir", str(write_real_clips(root / "real")),
        "--output-dir", str(root / "outputs"), "--device", "cpu", *options,
    ])
    demo, studio = app.create(args)
    if prepare is not None:
        prepare(studio)
    demo.launch(**app.launch_options(args, studio), prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{args.port}/", studio, demo
    finally:
        demo.close()


class ProgressLog:
    """Stands in for `gr.Progress`: records every (fraction, description)."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, str]] = []

    def __call__(self, fraction: float, desc: str = "") -> None:
        self.calls.append((fraction, desc))
