"""The quality gate of the workflows: each take a model makes is judged by its checkpoint's gate
(`music.take_quality`, saved beside the checkpoint as `quality_gate.json`); a flagged take is made again
with a new seed, at most `MAX_TAKE_TRIES` takes per output and only while the request's compute budget
has room; one that still fails is served with a warning. Seeds stay reproducible: try k (0-based) of the
output with seed s uses seed `retry_seed(s, k)`, and the output names the seed it was served with. For guided
text models the last `UNGUIDED_TRIES` tries are also made without classifier-free guidance (`LAST_TRY_GUIDANCE`),
and the output says so and records the guidance it was made with.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from models.outputs import GeneratedAudio
from music.take_quality import QualityGate, kind_of_prompt, load_gate
from studio.budget import Budget, Request
from studio.checks import MAX_SEED
from studio.progress import StepReporter
from studio.results import plural

# Takes one output may cost: the first and at most three regenerations. Measured on the bundled models at their
# defaults, each take judged before the stretch to the asked tempo, levels at the takes' peak: loops 96 at four
# tempi (`benchmarks/results/gate-served-level/quality-gate-loops.json`, three tries) first takes flagged 12.5%,
# served 1.0%, 1.15 takes per output; text 260 requests (the 65 test captions x 4 seeds,
# `benchmarks/results/gate-4tries/`) first takes flagged 10.0%, served 3.1% with three tries (the last unguided)
# and 1.9% with four (the last two unguided), at 1.17 and 1.20 takes per output. The fourth try was chosen on the
# valid captions (seed 0: outputs served flagged 4 -> 2 of 65).
MAX_TAKE_TRIES = 4
# The seed of a regeneration: the output's seed plus this stride per try, so that a regenerated take never
# reuses the seed of another output of the batch (those are seed + i for i < the number of outputs).
RETRY_SEED_STRIDE = 100_003
# The guidance scale of the last try of a guided take (1: no classifier-free guidance), when the guided tries
# before it were flagged. Some prompts wash at every seed under guidance (the text model's distorted guitars,
# brush kits, harpsichord chorales). Chosen on the valid captions (`bench_quality --split valid`, the 9 of 65
# whose first take the gate flagged, three retry seeds each): retries at guidance 3 (the default) passed 12 of
# 27, at 1.5 17 of 27, at 1 21 of 27; with guided retries 3 of the 65 outputs would be served flagged, with
# an unguided last try 1. Unguided takes fit their captions a little less (CLAP score 0.60 against 0.65 over
# the 65 valid captions, classifier 0.83 against 0.76), a trade for the last resort only; it is also the
# cheaper take (one UNet evaluation a step instead of two).
LAST_TRY_GUIDANCE = 1.0
# How many of the last tries of a guided take are made at `LAST_TRY_GUIDANCE` (when the tries before them failed):
# with four tries, two guided and two unguided, so the first three are what three tries made before.
UNGUIDED_TRIES = 2

Take = TypeVar("Take")


def retry_seed(seed: int, attempt: int) -> int:
    """The seed of try `attempt` (0-based; 0 is `seed` itself) of an output with seed `seed`."""
    return (int(seed) + attempt * RETRY_SEED_STRIDE) % (MAX_SEED + 1)


@dataclass
class TakeRecord:
    """How one output's take was chosen.

    Attributes:
        seeds: the seed of each try, in order (the last is the one served).
        reasons: each try's reasons (`music.take_quality.REASONS`; empty: passed).
        kind: the kind of take judged ("drums", "pitched", "band" or "any").
        stopped_by_budget: regeneration stopped because the request's compute budget was spent.
        guidance: each try's guidance scale (None: a model without guidance; empty: not recorded).
    """

    seeds: list[int] = field(default_factory=list)
    reasons: list[list[str]] = field(default_factory=list)
    kind: str = "any"
    stopped_by_budget: bool = False
    guidance: list[float | None] = field(default_factory=list)

    @property
    def served_seed(self) -> int:
        return self.seeds[-1]

    @property
    def served_guidance(self) -> float | None:
        """The guidance scale of the served take (None: a model without guidance, or no try recorded)."""
        return self.guidance[-1] if self.guidance else None

    @property
    def unguided_last_try(self) -> bool:
        """Whether the served take is a last try made without the guidance the request asked for."""
        return len(self.guidance) > 1 and self.guidance[-1] != self.guidance[0]

    @property
    def unguided_tries(self) -> int:
        """How many tries were made without the guidance the request asked for (its last ones)."""
        return sum(guidance != self.guidance[0] for guidance in self.guidance[1:]) if self.guidance else 0

    @property
    def regenerated(self) -> int:
        """Takes thrown away before the served one."""
        return len(self.seeds) - 1

    @property
    def passed(self) -> bool:
        """Whether the served take passed the gate."""
        return not self.reasons[-1]

    def to_dict(self) -> dict:
        """What the result and the API show: the served seed, tries, reasons per try, pass/fail."""
        return {"served_seed": self.served_seed, "tries": len(self.seeds), "regenerated": self.regenerated,
                "passed": self.passed, "kind": self.kind,
                "attempts": [{"seed": seed, "reasons": reasons, **({} if guidance is None else {"guidance": guidance})}
                             for seed, reasons, guidance in zip(self.seeds, self.reasons,
                                                                self.guidance or [None] * len(self.seeds))],
                "stopped_by_budget": self.stopped_by_budget}


class GateCache:
    """The gate of each checkpoint, read once per folder (`music.take_quality.load_gate`)."""

    def __init__(self) -> None:
        self._gates: dict[str, QualityGate] = {}
        self._lock = threading.Lock()

    def gate_for(self, source: str) -> QualityGate:
        """The gate saved in the folder `source`; the default one (with a note) for hub ids and folders
        without one."""
        with self._lock:
            if source not in self._gates:
                self._gates[source] = load_gate(source if Path(source).is_dir() else None)
            return self._gates[source]


def judged_audio(take: GeneratedAudio, seconds: float | None = None) -> tuple[np.ndarray, int]:
    """What the gate judges of a take: its first output's `[channels, samples]` audio and rate in Hz, as the
    model made it, before any time-stretch to the asked tempo (`GeneratedAudio.audios_before_stretch`: the
    gate is calibrated on unstretched real clips, and a stretched noise wash reads as less noisy than it
    sounds), cut to the part that becomes the first `seconds` of the served audio (None: all of it)."""
    audio = take.audios[0]
    kept = audio.shape[-1] if seconds is None else min(audio.shape[-1], round(seconds * take.sample_rate))
    before = take.audios_before_stretch
    if before is None:
        return audio[:, :kept], take.sample_rate
    return before[0][:, :round(before.shape[-1] * kept / audio.shape[-1])], take.sample_rate


def take_kind(gate: QualityGate, prompt: str) -> str:
    """The kind of take to judge: the one a prompt names among the gate's kinds, else "any"."""
    return kind_of_prompt(prompt, gate.thresholds) or "any"


@dataclass
class GateRun:
    """The gate of one request: its checkpoint's gate and the kind of take judged, the tries each output
    may cost, and the compute budget the regenerations are counted in.

    Attributes:
        gate: the checkpoint's gate; kind: the kind of take judged.
        max_tries: takes per output (1: judge and warn only, never regenerate).
        budget: the server's compute budget; request: the request as planned against it (`Workspace.plan`).
        spent: window-steps spent on regenerations so far, by all the request's outputs.
    """

    gate: QualityGate
    kind: str
    max_tries: int
    budget: Budget
    request: Request
    spent: int = 0

    def take(self, make: Callable[[int, float | None], Take], audio_of: Callable[[Take], tuple[np.ndarray, int]],
             seed: int, reporter: StepReporter, index: int, what: str, guidance: float | None = None
             ) -> tuple[Take, TakeRecord]:
        """Make a take with `make(seed, guidance)` and judge it (`audio_of(take)`: `[channels, samples]` audio
        and its rate in Hz); while it is flagged, tries are left and the budget has room for one more clip of
        the request beyond the regenerations already spent, make it again with `retry_seed`, the last
        `UNGUIDED_TRIES` tries at `LAST_TRY_GUIDANCE` when the request's `guidance` is above it (None: a model
        without guidance).
        `index` (0-based) and `what` name the output in the progress bar.

        Returns:
            The served take (the last made) and its `TakeRecord`.
        """
        record = TakeRecord(kind=self.kind)
        per_take = self.request.windows * self.request.steps
        for attempt in range(self.max_tries):
            take_seed, take_guidance = retry_seed(seed, attempt), self.try_guidance(guidance, attempt)
            take = make(take_seed, take_guidance)
            reasons = self.gate.reasons(*audio_of(take), kind=self.kind)
            record.seeds.append(take_seed)
            record.reasons.append(reasons)
            record.guidance.append(take_guidance)
            if not reasons or attempt == self.max_tries - 1:
                break
            if self.request.work + self.spent + per_take > self.budget.max_work:
                record.stopped_by_budget = True
                break
            self.spent += per_take
            unguided = self.try_guidance(guidance, attempt + 1) != guidance
            reporter.report(index / reporter.calls, f"{what} sounds broken ({', '.join(reasons)}): regenerating "
                                                    f"with seed {retry_seed(seed, attempt + 1)} (try {attempt + 2} "
                                                    f"of {self.max_tries}{', without guidance' if unguided else ''})")
        return take, record

    def try_guidance(self, guidance: float | None, attempt: int) -> float | None:
        """The guidance scale of try `attempt` (0-based): the asked one, but `LAST_TRY_GUIDANCE` for the last
        `UNGUIDED_TRIES` of several tries (never the first) when the asked one is above it."""
        last = attempt >= self.max_tries - UNGUIDED_TRIES and attempt > 0
        return LAST_TRY_GUIDANCE if last and guidance is not None and guidance > LAST_TRY_GUIDANCE else guidance


def failure_warning(what: str, record: TakeRecord) -> str:
    """The warning for an output served although its last take failed the gate (never silently); "" when
    it passed."""
    if record.passed:
        return ""
    reasons = ", ".join(record.reasons[-1])
    if record.regenerated or record.stopped_by_budget:
        why = (" (the request's compute budget had no room for another)" if record.stopped_by_budget
               else f" after {plural(len(record.seeds), 'take')}")
        unguided = record.unguided_tries
        tried = ", ".join(str(seed) for seed in record.seeds) + (
            f" (the last {'' if unguided == 1 else f'{unguided} '}without guidance)" if unguided else "")
        message = (f"{what} still sounds broken ({reasons}){why} with seeds {tried}: served with seed "
                   f"{record.served_seed}; press Generate again with another seed.")
    else:
        message = (f"{what} sounds broken ({reasons}): press Generate again with 'Random seed' ticked (or "
                   "another seed) to regenerate.")
    return message


def regenerated_summary(records: list[TakeRecord]) -> str:
    """"regenerated: 1 take, noise wash" (the reasons of the takes thrown away), "" when none was."""
    thrown = [reason for record in records for reasons in record.reasons[:-1] for reason in reasons]
    count = sum(record.regenerated for record in records)
    if not count:
        return ""
    reasons = sorted(set(thrown), key=thrown.index)
    return f"regenerated: {plural(count, 'take')}" + (f", {', '.join(reasons)}" if reasons else "")


def gate_line(records: list[TakeRecord], gate: QualityGate, what: str) -> str:
    """The status line of the gate: what was regenerated and which seeds were served, and the gate's note
    (e.g. no `quality_gate.json`: default limits); "" when there is neither. `what` names an output
    ("Variation")."""
    summary = regenerated_summary(records)
    note = f" ({gate.note})" if gate.note else ""
    if not summary:
        return f"Quality gate: {gate.note}." if gate.note else ""
    served = "; ".join(f"{what.lower()} {index + 1} served with seed {record.served_seed}"
                       + (" made without guidance" if record.unguided_last_try else "")
                       for index, record in enumerate(records) if record.regenerated)
    return f"Quality gate: {summary} ({served}){note}."
