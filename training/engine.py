"""What every trainer shares: accelerate set-up, the step loop (progress bar with loss, steps/s and ETA; JSON-lines
and TensorBoard logs), checkpoints every N steps keeping the last K, resuming from the latest one, and stopping
cleanly at a step count, a time budget (minutes) or SIGINT/SIGTERM.

A checkpoint folder `checkpoint-<step>/` is written under a temporary name and renamed when complete,
so a run killed mid-save never leaves a half checkpoint that `--resume` would pick.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import math
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Self

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint-"
STATE_FOLDER = "training_state"
TRAINER_STATE = "trainer_state.json"
LOG_FILE = "log.jsonl"
# Logged numbers that are not quantities (the batch fingerprint): kept out of TensorBoard.
NOT_SCALARS = {"batch"}


# ---- checkpoint folders --------------------------------------------------------------------

def checkpoint_step(folder: Path) -> int:
    return int(folder.name[len(CHECKPOINT_PREFIX):])


def checkpoint_folders(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints (with training state) in `output_dir`, oldest first."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    folders = [
        path for path in output_dir.iterdir()
        if path.is_dir() and path.name.startswith(CHECKPOINT_PREFIX) and path.name[len(CHECKPOINT_PREFIX):].isdigit()
        and (path / STATE_FOLDER / TRAINER_STATE).exists()
    ]
    return sorted(folders, key=checkpoint_step)


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint in `output_dir`, or None."""
    folders = checkpoint_folders(output_dir)
    return folders[-1] if folders else None


def read_trainer_state(checkpoint: str | Path) -> dict:
    """The `trainer_state.json` of a checkpoint (step, arguments, data summary, time trained)."""
    path = Path(checkpoint) / STATE_FOLDER / TRAINER_STATE
    if not path.exists():
        raise FileNotFoundError(f"{checkpoint} is not a complete training checkpoint "
                                f"(no {STATE_FOLDER}/{TRAINER_STATE}).")
    return json.loads(path.read_text())


def prune_checkpoints(output_dir: str | Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` checkpoints (`keep` <= 0 keeps all); return the deleted folders."""
    folders = checkpoint_folders(output_dir)
    doomed = folders[:-keep] if keep > 0 else []
    for folder in doomed:
        shutil.rmtree(folder, ignore_errors=True)
    return doomed


def saved_arguments(args) -> dict:
    """A run's arguments as saved with it (without the bookkeeping of which were given explicitly)."""
    return {key: value for key, value in vars(args).items() if key != "given"}


@contextmanager
def ema_weights(ema, module: torch.nn.Module) -> Iterator[None]:
    """Inside the block `module` holds the EMA weights of `ema` (diffusers' `EMAModel`); its own weights after."""
    parameters = list(module.parameters())
    ema.store(parameters)
    ema.copy_to(parameters)
    try:
        yield
    finally:
        ema.restore(parameters)


# ---- accelerate and logging ----------------------------------------------------------------

def tensorboard_available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None or importlib.util.find_spec("tensorboardX") is not None


def make_accelerator(output_dir: Path, mixed_precision: str | None, gradient_accumulation_steps: int,
                     cpu: bool = False) -> Accelerator:
    """Accelerator with mixed precision (None: `accelerate config`/launch's choice), gradient accumulation and
    TensorBoard logging under `output_dir/logs` when tensorboard is installed."""
    return Accelerator(
        mixed_precision=mixed_precision, gradient_accumulation_steps=gradient_accumulation_steps, cpu=cpu,
        log_with="tensorboard" if tensorboard_available() else None,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
    )


class RunLog:
    """Metrics to `output_dir/log.jsonl` (one JSON object a line, appended across resumes) and TensorBoard."""

    def __init__(self, accelerator: Accelerator, output_dir: Path, config: dict):
        self.accelerator = accelerator
        self.path = output_dir / LOG_FILE
        if accelerator.log_with:
            flat = {key: value if isinstance(value, (int, float, str, bool)) else str(value)
                    for key, value in config.items()}
            accelerator.init_trackers("train", config=flat)

    def write(self, step: int, **metrics) -> None:
        if not self.accelerator.is_main_process:
            return
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"step": step, **metrics}) + "\n")
        numbers = {key: value for key, value in metrics.items() if isinstance(value, (int, float))
                   and not isinstance(value, bool) and key not in NOT_SCALARS}
        if self.accelerator.log_with:
            self.accelerator.log(numbers, step=step)


def read_log(output_dir: str | Path) -> list[dict]:
    """All entries of a run's `log.jsonl`."""
    path = Path(output_dir) / LOG_FILE
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


class StopRequest:
    """Turns SIGINT/SIGTERM into a request to stop after the current step (and save); a second SIGINT interrupts."""

    def __init__(self):
        self.requested = False
        self._previous: dict[int, Callable] = {}

    def __enter__(self) -> Self:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. inside some test runners): no handler
                pass
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        logger.warning("Stop requested (signal %d): finishing this step and saving a checkpoint.", signum)

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


# ---- the loop ------------------------------------------------------------------------------

class TrainingTask(Protocol):
    """What a trainer gives the loop."""

    accelerator: Accelerator

    def train_step(self, step: int) -> dict[str, float]:
        """Run optimizer step `step` (0-based; all accumulation rounds) and return metrics (at least `loss`)."""

    def validate(self, step: int) -> dict[str, float]:
        """Validation metrics (main process; may be empty)."""

    def save_outputs(self, folder: Path, step: int) -> None:
        """Main process: write the model (loadable folder), demos and split lists into `folder`."""

    def trainer_state(self, step: int) -> dict:
        """JSON-able facts saved with the training state (arguments, data summary)."""


@dataclass
class LoopSettings:
    """When to stop, checkpoint and log.

    Attributes:
        output_dir: run folder.
        max_steps: stop when this many optimizer steps are done in total.
        max_minutes: stop (and save) after this many minutes of this session; None for no limit.
        checkpoint_every: save every this many steps (and always at the end).
        checkpoint_minutes: also save every this many minutes of this session (None: by steps only).
        keep_checkpoints: keep the newest this many checkpoints (<= 0 keeps all).
        log_every: write a log line every this many steps.
        quiet: no progress bar.
    """

    output_dir: Path
    max_steps: int
    max_minutes: float | None = None
    checkpoint_every: int = 500
    checkpoint_minutes: float | None = None
    keep_checkpoints: int = 3
    log_every: int = 10
    quiet: bool = False


def save_checkpoint(task: TrainingTask, settings: LoopSettings, step: int, seconds_trained: float) -> Path:
    """Write `checkpoint-<step>/` completely (model folder, demos, lists, training state), then prune old ones."""
    accelerator = task.accelerator
    final = settings.output_dir / f"{CHECKPOINT_PREFIX}{step:07d}"
    partial = settings.output_dir / f".{final.name}.partial"
    if accelerator.is_main_process:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial / STATE_FOLDER))
    if accelerator.is_main_process:
        task.save_outputs(partial, step)
        state = dict(task.trainer_state(step), step=step, seconds_trained=round(seconds_trained, 1))
        (partial / STATE_FOLDER / TRAINER_STATE).write_text(json.dumps(state, indent=1, default=str))
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)
        for folder in prune_checkpoints(settings.output_dir, settings.keep_checkpoints):
            logger.info("Removed old checkpoint %s", folder.name)
    accelerator.wait_for_everyone()
    return final


def _agree(accelerator: Accelerator, flag: bool) -> bool:
    """True on every process when it is True on any (so all processes stop at the same step)."""
    if accelerator.num_processes == 1:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=accelerator.device)
    return bool(accelerator.reduce(value, reduction="sum").item() > 0)


def run_loop(task: TrainingTask, settings: LoopSettings, start_step: int, log: RunLog,
             seconds_trained: float = 0.0) -> tuple[int, str]:
    """Train from `start_step` until `max_steps`, the time budget or a stop signal; checkpoint on the way.

    Returns:
        The number of steps done in total and why the loop ended.
    """
    accelerator = task.accelerator
    started = time.monotonic()
    step = start_step
    reason = "max steps reached"
    since_log: list = []
    bar = tqdm(total=settings.max_steps, initial=start_step, unit="step", dynamic_ncols=True, desc="training",
               disable=settings.quiet or not accelerator.is_main_process, smoothing=0.1)
    last_saved, last_saved_at = start_step, started
    with StopRequest() as stop:
        while step < settings.max_steps:
            metrics = task.train_step(step)
            step += 1
            # Losses stay on the device between log lines: reading one every step would make the CPU
            # wait for the GPU at every step.
            since_log.append(metrics["loss"])
            bar.update()
            if step % settings.log_every == 0 or step == settings.max_steps:
                losses = [float(value) for value in since_log]
                if not all(math.isfinite(value) for value in losses):
                    raise FloatingPointError(f"Loss is {losses[-1]} by step {step}: lower --learning-rate or try "
                                             "--mixed-precision no.")
                elapsed = time.monotonic() - started
                mean_loss = sum(losses) / len(losses)
                log.write(step, **{**metrics, "loss": mean_loss},
                          steps_per_s=round((step - start_step) / max(elapsed, 1e-9), 4))
                bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{metrics.get('lr', 0):.2e}", refresh=False)
                since_log = []
            out_of_time = settings.max_minutes is not None and time.monotonic() - started >= settings.max_minutes * 60
            if _agree(accelerator, stop.requested or out_of_time):
                reason = "stop requested" if stop.requested else f"time budget of {settings.max_minutes:g} min used"
                break
            timed = (settings.checkpoint_minutes is not None
                     and time.monotonic() - last_saved_at >= settings.checkpoint_minutes * 60)
            if (step % settings.checkpoint_every == 0 or _agree(accelerator, timed)) and step < settings.max_steps:
                _checkpoint(task, settings, step, log, seconds_trained + time.monotonic() - started)
                last_saved, last_saved_at = step, time.monotonic()
    bar.close()
    if step != last_saved or step == start_step == 0:
        _checkpoint(task, settings, step, log, seconds_trained + time.monotonic() - started)
    return step, reason


def _checkpoint(task: TrainingTask, settings: LoopSettings, step: int, log: RunLog, seconds_trained: float) -> None:
    metrics = task.validate(step) if task.accelerator.is_main_process else {}
    if metrics:
        log.write(step, **metrics)
    folder = save_checkpoint(task, settings, step, seconds_trained)
    if task.accelerator.is_main_process:
        summary = ", ".join(f"{key} {value:.4f}" for key, value in metrics.items())
        tqdm.write(f"step {step}: saved {folder}" + (f" ({summary})" if summary else ""))
