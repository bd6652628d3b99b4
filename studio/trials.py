"""Blind A/B listening test: the protocol, trials with random sides, answers appended to a CSV file
(with the protocol beside it as JSON), and a summary with win rates, exact binomial 95% intervals and
p-values. Generating the clips is the workflow's job (`studio.listening`).
"""
from __future__ import annotations

import csv
import datetime as _datetime
import hashlib
import hmac
import json
import math
import random
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.stats import binomtest

PROTOCOL_VERSION = "blind-ab-1"
REAL = "real"
ANSWERS = ("A", "B", "same")
TARGET_LEVEL_DBFS = -20.0
PEAK_LIMIT = 0.99
PROTOCOL = {
    "version": PROTOCOL_VERSION,
    "question": "Which clip sounds better: more like real, well-made music?",
    "answers": {"A": "clip A is better", "B": "clip B is better", "same": "no difference, or cannot tell"},
    "presentation": (
        "Two clips of equal length per trial. Two checkpoints: both generated with the same seed, steps, "
        "length and prompt. Which system plays as A is drawn at random for every trial; the files have "
        "neutral names and no metadata, so nothing on the page tells the systems apart."
    ),
    "real_clips": (
        "Generated vs real: a random segment, as long as the generated clip, of a random file of the "
        "real folder. Text models are prompted with that file's caption (metadata.jsonl) when it has one. "
        "With vocoder matching on (mel models), the real segment first goes through the model's own mel "
        "spectrogram and Griffin-Lim, so the test judges the diffusion model rather than the vocoder."
    ),
    "level": (
        f"Both clips are scaled to the same RMS level ({TARGET_LEVEL_DBFS:g} dBFS), lowered together when a "
        f"peak would pass {PEAK_LIMIT}; both are at the lower of the two sample rates, and mono when either is."
    ),
    "statistics": (
        "Per pair of systems: the first system's win rate among decisive answers (A or B), its exact "
        "(Clopper-Pearson) 95% confidence interval and a two-sided binomial test against 0.5; 'same' answers "
        "are counted apart. The share of answers picking side A checks for a position bias."
    ),
}
CSV_FIELDS = [
    "timestamp_utc", "protocol", "trial_id", "listener", "mode", "system_a", "system_b", "answer",
    "preferred", "seed", "seconds", "steps", "prompt", "real_clip", "vocoder_matched", "level_dbfs",
    "trial_created_utc", "settings",
]


# A cell starting with one of these is a formula to a spreadsheet (CWE-1236).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# Free-text columns of the CSV (numbers such as level_dbfs may start with "-" and are left alone).
TEXT_FIELDS = ("listener", "system_a", "system_b", "preferred", "prompt", "real_clip", "trial_id", "mode")


def csv_safe(text: str) -> str:
    """`text` as a spreadsheet shows it, never runs it: a cell that starts like a formula gets a leading
    apostrophe (OWASP's advice against CSV injection, CWE-1236)."""
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def key_matches(given: object, expected: str) -> bool:
    """Whether `given` is the experimenter's key (compared in constant time)."""
    return isinstance(given, str) and bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


# Shortest experimenter key a server starts with (`app.py` refuses shorter ones).
MIN_KEY_CHARS = 12


def new_results_key() -> str:
    """A random experimenter key for a run that was started without one."""
    return secrets.token_urlsafe(12)


def utc_now() -> str:
    return _datetime.datetime.now(_datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Trial:
    """One pair of clips as presented; the identity of each side stays on the server (`gr.State`).

    Attributes:
        system_a, system_b: the systems (model names, or "real") playing as A and as B.
        clip_a, clip_b: the neutral WAV files played.
        seed, seconds, steps, prompt: generation settings shared by both sides (seconds: clip length).
        real_clip: the real file used ("" for two checkpoints).
        level_dbfs: RMS level both clips were matched to.
    """

    trial_id: str
    mode: str
    system_a: str
    system_b: str
    clip_a: str
    clip_b: str
    seed: int
    seconds: float
    steps: int
    prompt: str = ""
    real_clip: str = ""
    vocoder_matched: bool = False
    level_dbfs: float = TARGET_LEVEL_DBFS
    created_utc: str = ""
    answered: bool = False
    settings: str = ""


def settings_id(mode: str, systems: list[str], steps: int, seconds: float, prompt: str,
                vocoder_matched: bool) -> str:
    """A short id of the comparison a trial was made under (mode, systems, steps, clip length in s,
    prompt, vocoder matching): answers are summarized per pair *and* settings, so trials made under
    other settings never pool with the experimenter's."""
    text = json.dumps([mode, systems, int(steps), round(float(seconds or 0.0), 3), prompt, bool(vocoder_matched)])
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def new_trial_id() -> str:
    return uuid.uuid4().hex[:12]


def assign_sides(first: str, second: str, rng: random.Random) -> tuple[str, str]:
    """(system on side A, system on side B), each order equally likely."""
    return (first, second) if rng.random() < 0.5 else (second, first)


def match_loudness(
    clips: list[np.ndarray], target_dbfs: float = TARGET_LEVEL_DBFS, peak_limit: float = PEAK_LIMIT
) -> tuple[list[np.ndarray], float]:
    """Scale every clip to the same RMS level; lower all together if a peak would pass `peak_limit`.

    Returns:
        The scaled float32 clips and the RMS level they share, in dBFS.
    """
    rms = [float(np.sqrt(np.mean(np.square(clip, dtype=np.float64)))) for clip in clips]
    if min(rms) <= 1e-9:
        raise ValueError("A clip of the pair is silent; cannot match levels.")
    target = 10 ** (target_dbfs / 20)
    peaks = [float(np.abs(clip).max()) * target / level for clip, level in zip(clips, rms)]
    target *= min(1.0, peak_limit / max(peaks))
    scaled = [(clip * (target / level)).astype(np.float32) for clip, level in zip(clips, rms)]
    return scaled, 20 * math.log10(target)


class AnswerLog:
    """Answers appended to a CSV file (one row per answer), `protocol.json` written beside it.

    Safe to use from several request threads at once, and one answer per trial: the check that a trial
    is unanswered and the append are one step under a lock (the ids answered are read from the file once).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self._lock = threading.Lock()
        self._answered: set[str] | None = None

    def _answered_ids(self) -> set[str]:
        """Trial ids answered so far (read from the file the first time; call under the lock)."""
        if self._answered is None:
            self._answered = set()
            if self.path.exists():
                with self.path.open(newline="", encoding="utf-8") as file:
                    self._answered = {row.get("trial_id", "") for row in csv.DictReader(file)}
        return self._answered

    @property
    def protocol_path(self) -> Path:
        return self.path.with_name("protocol.json")

    def record(self, trial: Trial, answer: str, listener: str = "") -> dict[str, str]:
        """Append one answer ("A", "B" or "same") to `trial`; returns the row written."""
        if answer not in ANSWERS:
            raise ValueError(f"answer must be one of {ANSWERS}, got {answer!r}")
        preferred = {"A": trial.system_a, "B": trial.system_b, "same": "same"}[answer]
        row = {
            "timestamp_utc": utc_now(), "protocol": PROTOCOL_VERSION, "trial_id": trial.trial_id,
            "listener": (listener or "anonymous").strip()[:80], "mode": trial.mode,
            "system_a": trial.system_a, "system_b": trial.system_b, "answer": answer, "preferred": preferred,
            "seed": str(trial.seed), "seconds": f"{trial.seconds:.3f}", "steps": str(trial.steps),
            "prompt": trial.prompt, "real_clip": trial.real_clip, "vocoder_matched": str(trial.vocoder_matched),
            "level_dbfs": f"{trial.level_dbfs:.2f}", "trial_created_utc": trial.created_utc,
            "settings": trial.settings,
        }
        row.update({key: csv_safe(row[key]) for key in TEXT_FIELDS})
        with self._lock:
            answered = self._answered_ids()
            if row["trial_id"] in answered:
                raise ValueError("This pair is answered already: press 'Next pair' for a new one.")
            answered.add(row["trial_id"])
            self.path.parent.mkdir(parents=True, exist_ok=True)
            new_file = not self.path.exists() or self.path.stat().st_size == 0
            with self.path.open("a", newline="", encoding="utf-8") as file:
                writer = csv.DictWriter(file, fieldnames=CSV_FIELDS)
                if new_file:
                    writer.writeheader()
                writer.writerow(row)
            if not self.protocol_path.exists():
                self.protocol_path.write_text(json.dumps(PROTOCOL, indent=2) + "\n")
        return row

    def rows(self) -> list[dict[str, str]]:
        """Every answer so far (empty when none)."""
        if not self.path.exists():
            return []
        with self._lock, self.path.open(newline="", encoding="utf-8") as file:
            return list(csv.DictReader(file))


class KeyAttempts:
    """A rate limit on experimenter-key attempts, per client: `free` wrong keys, then each further wrong
    key makes that client wait twice as long as the last (from `first_wait_s`, at most `max_wait_s`)
    before its next attempt counts. A right key clears the client's record. Every wrong key is answered
    the same way, however close it is.

    Args:
        free: wrong keys a client may give before it must wait.
        first_wait_s, max_wait_s: the first and the longest wait, in seconds.
        max_clients: clients remembered (the longest-quiet forgotten first).
    """

    def __init__(self, free: int = 5, first_wait_s: float = 1.0, max_wait_s: float = 60.0,
                 max_clients: int = 10_000) -> None:
        self.free, self.first_wait_s, self.max_wait_s, self.max_clients = free, first_wait_s, max_wait_s, max_clients
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()  # client: (wrong keys, next try at)
        self._lock = threading.Lock()

    def check(self, client: str, right: bool) -> None:
        """Count one attempt of `client`; `ValueError` when it must wait (whatever the key)."""
        now = time.monotonic()
        with self._lock:
            failures, next_try = self._failures.get(client, (0, 0.0))
            if now < next_try:
                raise ValueError(f"Too many wrong experimenter keys from this client: try again in "
                                 f"{math.ceil(next_try - now)} s.")
            if right:
                self._failures.pop(client, None)
                return
            failures += 1
            wait = 0.0 if failures <= self.free else min(self.max_wait_s,
                                                          self.first_wait_s * 2 ** (failures - self.free - 1))
            self._failures[client] = (failures, now + wait)
            self._failures.move_to_end(client)
            while len(self._failures) > self.max_clients:
                self._failures.popitem(last=False)


class PendingTrials:
    """Trials handed out and not yet forgotten, by id, so an API client can answer one by its id
    (the page keeps its trial in `gr.State`). The oldest are dropped beyond `max_trials`."""

    def __init__(self, max_trials: int = 1000) -> None:
        self.max_trials = max_trials
        self._trials: OrderedDict[str, Trial] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, trial: Trial) -> None:
        with self._lock:
            self._trials[trial.trial_id] = trial
            while len(self._trials) > self.max_trials:
                self._trials.popitem(last=False)

    def get(self, trial_id: str) -> Trial | None:
        with self._lock:
            return self._trials.get(str(trial_id))


@dataclass
class PairSummary:
    """Answers about one pair of systems.

    Attributes:
        first, second: the systems ("real" is always second).
        first_wins, second_wins, same: answers preferring each, and "same" answers.
        win_rate: first_wins / (first_wins + second_wins); None without decisive answers.
        ci_low, ci_high: exact binomial 95% interval of win_rate.
        p_value: two-sided binomial test of win_rate against 0.5.
        side_a_share: share of decisive answers that picked side A (0.5 means no position bias).
        settings: id of the comparison's settings (`settings_id`); one pair made under two settings
            gives two summaries.
    """

    first: str
    second: str
    trials: int
    first_wins: int
    second_wins: int
    same: int
    win_rate: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    side_a_share: float | None
    settings: str = ""

    def as_dict(self) -> dict:
        """The fields as JSON numbers (scipy's numpy floats would reach an API client as strings)."""
        return {key: value.item() if isinstance(value, np.generic) else value for key, value in asdict(self).items()}


def summarize(rows: list[dict[str, str]], confidence: float = 0.95) -> list[PairSummary]:
    """One `PairSummary` per pair of systems and settings in `rows` (as `AnswerLog.rows` gives them), most
    answered first."""
    pairs: dict[tuple[str, str, str], list[dict[str, str]]] = {}
    for row in rows:
        systems = sorted({row["system_a"], row["system_b"]}, key=lambda name: (name == REAL, name))
        if len(systems) == 2:
            pairs.setdefault((systems[0], systems[1], row.get("settings") or ""), []).append(row)
    summaries = []
    for (first, second, settings), answers in pairs.items():
        first_wins = sum(row["preferred"] == first for row in answers)
        second_wins = sum(row["preferred"] == second for row in answers)
        same = sum(row["answer"] == "same" for row in answers)
        decisive = first_wins + second_wins
        side_a = sum(row["answer"] == "A" for row in answers)
        if decisive:
            test = binomtest(first_wins, decisive, 0.5)
            interval = test.proportion_ci(confidence_level=confidence, method="exact")
            win_rate, ci_low, ci_high, p_value = first_wins / decisive, interval.low, interval.high, test.pvalue
        else:
            win_rate = ci_low = ci_high = p_value = None
        summaries.append(PairSummary(first, second, len(answers), first_wins, second_wins, same, win_rate, ci_low,
                                     ci_high, p_value, side_a / decisive if decisive else None, settings))
    return sorted(summaries, key=lambda summary: -summary.trials)


def summary_markdown(summaries: list[PairSummary]) -> str:
    """A Markdown table of `summaries`, or a line saying there are no answers yet."""
    if not summaries:
        return "No answers yet."
    lines = [
        ("| first system | second system | answers | first wins | second wins | same | first's win rate "
        "| 95% interval | p (vs 50%) | picked side A | settings |"),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def percent(value: float | None) -> str:
        return "–" if value is None else f"{100 * value:.0f}%"

    for s in summaries:
        interval = "–" if s.ci_low is None else f"{100 * s.ci_low:.0f}–{100 * s.ci_high:.0f}%"
        p_value = "–" if s.p_value is None else f"{s.p_value:.3g}"
        lines.append(f"| `{s.first}` | `{s.second}` | {s.trials} | {s.first_wins} | {s.second_wins} | {s.same} | "
                     f"{percent(s.win_rate)} | {interval} | {p_value} | {percent(s.side_a_share)} | "
                     f"`{s.settings or '-'}` |")
    lines.append("")
    lines.append("Win rate counts decisive answers only; an interval that excludes 50% (p < 0.05) means the "
                 "listeners can tell the systems apart.")
    return "\n".join(lines)
