"""What every trainer shares: accelerate set-up, the step loop (progress bar with loss, steps/s and ETA; JSON-lines
and TensorBoard logs), checkpoints every N steps keeping the last K, resuming from the latest one, and stopping
cleanly at a step count, a time budget (minutes) or SIGINT/SIGTERM. Also the core of both training commands
(`python -m training.train`, `python -m training.train_pack`): `run_training` (from parsed arguments to the last
checkpoint), `command_main` (their `main`) and `DenoiserTrainer` (the validation loss both diffusion trainers use).

A checkpoint folder `checkpoint-<step>/` is written under a temporary name and renamed when complete,
so a run killed mid-save never leaves a half checkpoint that `--resume` would pick.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import math
import shutil
import signal
import sys
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


class UsageError(ValueError):
    """Arguments that do not fit together or a run folder used the wrong way; the message says how to fix it."""


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


# ---- the core of both training commands ----------------------------------------------------

class DenoiserTrainer:
    """Base of the diffusion trainers (`DiffusionTrainer` from audio files, `PackTrainer` from a data pack): the
    loss on fixed valid windows with fixed noise, with the live and the EMA weights.

    A subclass sets `args` (with `valid_items` and `batch_size`), `accelerator`, `denoiser` (prepared by accelerate)
    and `ema` (diffusers' `EMAModel`), and says how many valid windows it has and the loss of a run of them.
    """

    args: argparse.Namespace
    accelerator: Accelerator
    denoiser: torch.nn.Module
    ema: object

    @property
    def unwrapped(self) -> torch.nn.Module:
        return self.accelerator.unwrap_model(self.denoiser)

    def valid_size(self) -> int:
        """How many valid windows there are (0: no validation)."""
        raise NotImplementedError

    def valid_batch_loss(self, denoiser: torch.nn.Module, start: int, stop: int) -> torch.Tensor:
        """Mean loss of valid windows `start` to `stop - 1`, with noise seeded by `start` (the same every time)."""
        raise NotImplementedError

    @torch.no_grad()
    def valid_loss(self) -> float:
        """Loss on the first `valid_items` valid windows with fixed noise (comparable across checkpoints)."""
        denoiser = self.unwrapped.eval()
        count = min(self.args.valid_items, self.valid_size())
        total = 0.0
        for start in range(0, count, self.args.batch_size):
            stop = min(count, start + self.args.batch_size)
            total += float(self.valid_batch_loss(denoiser, start, stop)) * (stop - start)
        denoiser.train()
        return total / count

    def validate(self, step: int) -> dict[str, float]:
        """`valid_loss` with the live weights and with the EMA weights; empty without valid windows."""
        if not self.valid_size():
            return {}
        metrics = {"valid_loss": self.valid_loss()}
        with ema_weights(self.ema, self.unwrapped):
            metrics["valid_loss_ema"] = self.valid_loss()
        return metrics


def start_checkpoint(output_dir: Path, resume: str | bool | None) -> Path | None:
    """Where a run starts: the newest checkpoint of `output_dir` (`resume` True or "latest"; None when there is
    none yet), the checkpoint folder `resume` names, or nothing (a new run).

    Raises:
        UsageError: a new run in a folder that already holds checkpoints.
    """
    if resume is True or resume == "latest":
        latest = latest_checkpoint(output_dir)
        if latest is None:
            logger.info("No checkpoint in %s yet: starting a new run.", output_dir)
        return latest
    if resume:
        return Path(resume)
    if checkpoint_folders(output_dir):
        raise UsageError(f"{output_dir} already holds checkpoints: pass --resume to continue that run, or choose "
                         "another --output-dir.")
    return None


def run_training(args: argparse.Namespace, output_dir: Path, build_trainer: Callable[[Accelerator], TrainingTask],
                 resume_from: Path | None = None, start_step: int = 0, seconds_trained: float = 0.0,
                 gradient_accumulation_steps: int = 1, fast_gpu_math: bool = False) -> Path | None:
    """One training run once its start is known; returns the last checkpoint folder.

    The run folder, torch CPU threads (`args.threads`), TF32 matmuls and cuDNN autotuning on a GPU (with
    `fast_gpu_math`), the accelerator (`args.mixed_precision`, `args.cpu`), the seed (`args.seed`), the trainer from
    `build_trainer(accelerator)`, its saved training state when `resume_from` is given, `train_config.json`, then
    `run_loop` under the budget of `args` (`max_steps`, `max_minutes`, `checkpoint_every`, `checkpoint_minutes`,
    `keep_checkpoints`, `log_every`, `quiet`).

    Args:
        resume_from: a checkpoint whose training state (weights, optimizer, EMA, random states) to load; None to
            start fresh (a trainer may still have taken weights from a pipeline folder).
        start_step: the step the run continues at; `seconds_trained`: training time before this session.
    """
    from accelerate.utils import set_seed

    output_dir.mkdir(parents=True, exist_ok=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    if fast_gpu_math and not args.cpu and torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    accelerator = make_accelerator(output_dir, args.mixed_precision, gradient_accumulation_steps, args.cpu)
    set_seed(args.seed)
    trainer = build_trainer(accelerator)
    if resume_from is not None:
        accelerator.load_state(str(resume_from / STATE_FOLDER))
        if isinstance(trainer, DenoiserTrainer):
            trainer.ema.to(accelerator.device)  # its saved state loads on the CPU
        logger.info("Resumed from %s at step %d.", resume_from, start_step)
    if accelerator.is_main_process:
        (output_dir / "train_config.json").write_text(json.dumps(saved_arguments(args), indent=1, default=str))
    settings = LoopSettings(output_dir=output_dir, max_steps=args.max_steps, max_minutes=args.max_minutes,
                            checkpoint_every=args.checkpoint_every,
                            checkpoint_minutes=getattr(args, "checkpoint_minutes", None),
                            keep_checkpoints=args.keep_checkpoints, log_every=args.log_every, quiet=args.quiet)
    log = RunLog(accelerator, output_dir, saved_arguments(args))
    steps, reason = run_loop(trainer, settings, start_step, log, seconds_trained)
    accelerator.end_training()
    last = latest_checkpoint(output_dir)
    if accelerator.is_main_process:
        logger.info("Stopped at step %d (%s). Last checkpoint: %s", steps, reason, last)
        if last is not None:
            write_quality_gates(output_dir, last, quiet=args.quiet)
    return last


def write_quality_gates(output_dir: Path, last: Path, quiet: bool = False) -> None:
    """Calibrate the quality gate (`training.quality_gate`) on the real valid and test clips of the kinds this
    run trained on, and save it into every checkpoint of the run (it depends on those clips only, not on the
    weights). Without real clips to calibrate on, a warning: the app then uses its default limits."""
    from training.quality_gate import calibrate_checkpoint

    try:
        gate = calibrate_checkpoint(last, progress=not quiet)
    except ValueError as error:
        logger.warning("No quality gate written (%s); the app uses its default limits for these checkpoints. "
                       "Calibrate later with `python -m training.quality_gate CHECKPOINT --corpus DATA`.", error)
        return
    for folder in checkpoint_folders(output_dir):
        if folder != last:
            gate.save(folder)
    logger.info("Quality gate calibrated on real clips (%s) and saved in each checkpoint.",
                ", ".join(sorted(gate.thresholds)))


def command_main(parse: Callable[[list[str] | None], argparse.Namespace],
                 train: Callable[[argparse.Namespace], Path | None], argv: list[str] | None,
                 user_errors: tuple[type[BaseException], ...]) -> int:
    """`main` of a training command: parse `argv`, log INFO to stderr, `train`; one of `user_errors` prints
    `error: <message>` and exits 2 (anything else is a bug and keeps its traceback)."""
    args = parse(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        train(args)
    except user_errors as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
