"""What a workflow tells its caller while it runs: progress in the user's units ("Variation 2 of 3 ·
step 7 of 20 · about 35 s left", from the pipelines' `progress_callback(steps_done, steps_total)`),
warnings and notes worth knowing, and the check at every report that stops a cancelled request.

The page passes Gradio's progress bar, toasts and cancellation check (`webapp.progress`); scripts and
benchmarks pass nothing, and nothing is reported.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

Progress = Callable[..., object]


class GenerationCancelled(Exception):
    """The request was cancelled (Stop, `job.cancel()`, a closed tab): stop now and write nothing."""


def never_cancelled() -> bool:
    return False


@dataclass
class Feedback:
    """Where a workflow reports to.

    Attributes:
        progress: takes `(fraction, desc=...)` (a `gr.Progress`); None reports nothing.
        cancelled: says whether the request was cancelled; checked at every report.
        warn: shows a warning now (a toast in the app); warnings are in the result's notes as well.
        inform: shows a note now (e.g. what was done to an upload).
    """

    progress: Progress | None = None
    cancelled: Callable[[], bool] = never_cancelled
    warn: Callable[[str], object] | None = None
    inform: Callable[[str], object] | None = None

    def reporter(self, calls: int, what: str) -> StepReporter:
        """A `StepReporter` for `calls` pipeline calls, each making one `what` ("Variation")."""
        return StepReporter(self.progress, calls, what, cancelled=self.cancelled)

    def info(self, message: str) -> None:
        if self.inform is not None:
            self.inform(message)


class Notes(list):
    """The warnings of one request, in order: each is shown at once (`Feedback.warn`) and kept for the
    result's status text."""

    def __init__(self, feedback: Feedback | None = None) -> None:
        super().__init__()
        self.feedback = feedback or Feedback()

    def warn(self, message: str) -> None:
        self.append(message)
        if self.feedback.warn is not None:
            self.feedback.warn(message)


def duration_text(seconds: float) -> str:
    """"45 s", "3 min 20 s", "1 h 5 min" (rounded for a human, not a stopwatch)."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    if seconds < 3600:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes} min" + (f" {rest} s" if rest else "")
    hours, rest = divmod(round(seconds / 60), 60)
    return f"{hours} h" + (f" {rest} min" if rest else "")


class StepReporter:
    """Maps the step callbacks of several pipeline calls (one per clip) onto one progress bar.

    Args:
        progress: `gr.Progress` (or a stand-in taking `(fraction, desc=...)`); None reports nothing.
        calls: pipeline calls in the request (clips made).
        what: what one call makes, e.g. "Variation", "Output", "Clip".
        steps: the denoising steps the user asked for; when a call runs a whole multiple of them
            (one pass per window of a long clip), the window is named too.
        cancelled: says whether the request was cancelled (default: never); checked at every report,
            raising `GenerationCancelled`.
        clock: seconds (tests pass a fake).
    """

    def __init__(
        self,
        progress: Progress | None,
        calls: int,
        what: str,
        steps: int | None = None,
        cancelled: Callable[[], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.progress, self.calls, self.what, self.steps = progress, max(1, calls), what, steps
        self.cancelled = cancelled or never_cancelled
        self.clock = clock
        self.steps_done = 0  # steps finished in completed and current calls
        self.seconds_in_steps = 0.0  # time spent in them, in seconds
        self._call_started: float | None = None
        self._call_index = -1

    def check(self) -> None:
        """Raise `GenerationCancelled` if the request was cancelled."""
        if self.cancelled():
            raise GenerationCancelled

    def report(self, fraction: float, description: str) -> None:
        self.check()
        if self.progress is not None:
            self.progress(min(1.0, max(0.0, fraction)), desc=description)

    @property
    def seconds_per_step(self) -> float | None:
        """Measured seconds per denoising step (per window) so far; None before the first step."""
        return self.seconds_in_steps / self.steps_done if self.steps_done else None

    def step_text(self, steps_done: int, steps_total: int) -> str:
        """"step 7 of 20", or "window 2 of 3 · step 7 of 20" when the call runs one pass per window."""
        per_pass = self.steps
        if per_pass and steps_total > per_pass and steps_total % per_pass == 0:
            window, step = divmod(max(0, steps_done - 1), per_pass)
            return f"window {window + 1} of {steps_total // per_pass} · step {step + 1} of {per_pass}"
        return f"step {steps_done} of {steps_total}"

    def for_call(self, index: int) -> Callable[[int, int], None]:
        """The `progress_callback` for call `index` (0-based); start it right before the call."""
        self.check()
        started = self.clock()
        done_before = self.steps_done
        seconds_before = self.seconds_in_steps

        def callback(steps_done: int, steps_total: int) -> None:
            self.steps_done = done_before + steps_done
            self.seconds_in_steps = seconds_before + (self.clock() - started)
            within = steps_done / steps_total if steps_total else 1.0
            left_steps = (steps_total - steps_done) + (self.calls - index - 1) * steps_total
            eta = ("" if self.seconds_per_step is None
                   else f" · about {duration_text(left_steps * self.seconds_per_step)} left")
            self.report((index + within) / self.calls,
                        f"{self.what} {index + 1} of {self.calls} · {self.step_text(steps_done, steps_total)}{eta}")

        return callback


def start_job(feedback: Feedback | None, clips: int, what: str, loading: str = "Loading the model..."
              ) -> tuple[Feedback, Notes, StepReporter]:
    """What a workflow reports through once its request is checked: `feedback` (a silent one when None),
    its notes, and a step reporter over `clips` calls named `what`, already told that the model is loading."""
    feedback = feedback or Feedback()
    reporter = feedback.reporter(clips, what)
    reporter.report(0.0, loading)
    return feedback, Notes(feedback), reporter
