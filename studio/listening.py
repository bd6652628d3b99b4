"""The blind listening test's workflow: the next pair (two checkpoints with the same seed, settings and
prompt, or one checkpoint against a segment of a real clip of the kinds it was trained on), brought to
the same rate, channels, length and loudness and written under neutral names; answers; results for the
experimenter. The records and statistics are `studio.trials`. Seconds, Hz and dBFS throughout.
"""
from __future__ import annotations

import json
import random
import secrets
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from models.generator import AudioGenerator
from music.audio import load_audio, resample
from music.take_quality import measure_take, take_reasons
from studio.captions import TrainingCaptions, load_training_captions, training_subsets
from studio.checks import MAX_PROMPT_CHARS, pick_seed
from studio.generation import ModelChoice, Workspace, default_seconds, generate
from studio.generation import bpm_from_prompt as tempo_of_prompt
from studio.outputs import public_path
from studio.progress import Feedback, StepReporter, start_job
from studio.requests import ListeningTrialRequest
from studio.results import TrialResult, plural, status_text
from studio.trials import (
    REAL,
    AnswerLog,
    KeyAttempts,
    PairSummary,
    PendingTrials,
    Trial,
    assign_sides,
    key_matches,
    match_loudness,
    new_results_key,
    new_trial_id,
    settings_id,
    summarize,
    utc_now,
)

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif"}
# Seconds a copy of the answers CSV handed to an experimenter stays downloadable.
EXPORT_MAX_AGE_S = 3600.0


def remove_old_exports(folder: Path, max_age_s: float) -> None:
    """Delete the per-request export folders under `folder` last changed over `max_age_s` seconds ago."""
    if not folder.is_dir():
        return
    oldest = time.time() - max_age_s
    for export in folder.iterdir():
        try:
            if export.stat().st_mtime < oldest:
                shutil.rmtree(export, ignore_errors=True)
        except OSError:  # removed by a concurrent request meanwhile
            continue


@dataclass
class Pair:
    """The two sides of a trial before they are matched: who made each, float32 `[channels, samples]`
    audio and rate in Hz, and for generated vs real the real clip's name and whether it went through
    the model's vocoder."""

    systems: tuple[str, str]
    audios: list[tuple[np.ndarray, int]]
    seconds: float
    real_clip: str = ""
    matched: bool = False


class ListeningTest:
    """The listening test of one server.

    Args:
        workspace: models, output folder and limits.
        answers: the answer log.
        real_dir: folder of real clips for "generated vs real" trials (searched recursively).
        rng: random source of sides and real clips (seeded in tests).
        results_key: the experimenter's key to the results (a random one when None).
    """

    def __init__(self, workspace: Workspace, answers: AnswerLog, real_dir: str | Path | None = None,
                 rng: random.Random | None = None, results_key: str | None = None) -> None:
        self.workspace = workspace
        self.answers = answers
        self.real_dir = None if real_dir is None else Path(real_dir).expanduser()
        self.rng = rng or random.SystemRandom()
        self.results_key = results_key or new_results_key()
        self.trials = PendingTrials()
        self.key_attempts = KeyAttempts()
        self.settings: ListeningTrialRequest | None = None
        self._captions: dict[str, TrainingCaptions | None] = {}

    @property
    def registry(self):
        return self.workspace.registry

    # ---- what there is to compare ----------------------------------------------------------

    def real_clips(self) -> list[Path]:
        """Audio files under `real_dir` (recursively), sorted; empty without a folder."""
        if self.real_dir is None or not self.real_dir.is_dir():
            return []
        return sorted(path for path in self.real_dir.rglob("*") if path.suffix.lower() in AUDIO_SUFFIXES)

    def caption_of(self, clip: Path) -> str:
        """The clip's caption from a `metadata.jsonl` (Hugging Face audiofolder layout) beside or above it."""
        for folder in [clip.parent, *clip.parents]:
            index = folder / "metadata.jsonl"
            if index.is_file():
                relative = clip.relative_to(folder).as_posix()
                for line in index.read_text(encoding="utf-8").splitlines():
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue
                    if entry.get("file_name") == relative:
                        return str(entry.get("text") or entry.get("caption") or "")
                return ""
            if self.real_dir is not None and folder == self.real_dir:
                break
        return ""

    def training_captions(self, choice: ModelChoice) -> TrainingCaptions | None:
        """What a local checkpoint was trained on (`studio.captions`), None for hub models and folders
        that do not say; read once per checkpoint."""
        if choice.origin in ("hub", "custom") and not Path(choice.source).is_dir():
            return None
        if choice.source not in self._captions:
            corpus = [self.real_dir.parent] if self.real_dir is not None else []
            self._captions[choice.source] = load_training_captions(choice.source, corpus)
        return self._captions[choice.source]

    def real_clips_for(self, choice: ModelChoice) -> list[Path]:
        """Real clips of the kinds `choice` was trained on (the corpus folders of its `train_files.txt`:
        only drums for a drum model), or every real clip when that is unknown or matches none."""
        clips = self.real_clips()
        subsets = training_subsets(choice.source) if Path(choice.source).is_dir() else set()
        matching = [clip for clip in clips if clip.relative_to(self.real_dir).parts[0] in subsets]
        return matching or clips

    def defaults(self) -> dict[str, str | None]:
        """The opening settings, a comparison that runs as it is: generated vs real (a text model
        prompted with each real clip's caption) when real clips are on disk, else two local checkpoints,
        of the same kind when there are two (an unconditional and a text model otherwise, the text model
        prompted with the other's training captions so both make the same kind of clip).

        Returns:
            {"mode", "model_a", "model_b", "modes"}: "modes" lists the modes that can run.
        """
        local = self.registry.local_choices
        text = [choice for choice in local if choice.text_conditioned]
        unconditional = [choice for choice in local if not choice.text_conditioned]
        modes = ["two checkpoints"] + (["generated vs real"] if self.real_clips() else [])
        pair: list[ModelChoice] = next((group[:2] for group in (unconditional, text) if len(group) >= 2), [])
        if not pair and unconditional and text:
            pair = [unconditional[0], text[0]]
        if "generated vs real" in modes and local:
            first = (text or unconditional)[0]
            second = next((choice for choice in pair if choice is not first), None)
            return {"mode": "generated vs real", "model_a": first.label,
                    "model_b": None if second is None else second.label, "modes": modes}
        labels = [choice.label for choice in pair] or [self.registry.default_label(), None]
        return {"mode": "two checkpoints", "model_a": labels[0], "model_b": labels[1], "modes": modes}

    # ---- the experimenter's settings --------------------------------------------------------

    def current_request(self) -> ListeningTrialRequest:
        """What "Next pair" makes now: the experimenter's saved settings, else `defaults`."""
        if self.settings is not None:
            return self.settings
        defaults = self.defaults()
        return ListeningTrialRequest(defaults["mode"], defaults["model_a"], defaults["model_b"])

    def check_results_key(self, key: object, client: str = "") -> None:
        """`ValueError` unless `key` is the experimenter's key (the same message however close it is);
        `client` (its address) is rate-limited after a few wrong keys (`studio.trials.KeyAttempts`)."""
        right = key_matches(key, self.results_key)
        self.key_attempts.check(client, right)
        if not right:
            raise ValueError("Listening-test results and settings are for the experimenter: give the key set "
                             "with --listening-key (or printed when the app started).")

    def save_settings(self, key: str | None, request: ListeningTrialRequest, client: str = "") -> str:
        """Save what every listener's "Next pair" makes (the experimenter's key only). The values are
        checked now, so a listener never meets a settings error; returns a status line."""
        self.check_results_key(key, client)
        request.check_mode()
        first = self.registry.resolve(request.model_a)
        if request.mode == "two checkpoints":
            if request.model_b in (None, "") or self.registry.resolve(request.model_b).source == first.source:
                raise ValueError("Checkpoint 2: pick a second checkpoint, different from checkpoint 1.")
        elif not self.real_clips_for(first):
            raise ValueError(f"No real clips found under {self.real_dir or '(no folder given)'}.")
        checked = replace(request, prompt="").check(self.workspace.limits)
        prompt = (request.prompt or "").strip()[:MAX_PROMPT_CHARS]  # the saved prompt is cut, not refused
        self.settings = ListeningTrialRequest(
            checked.mode, checked.model_a, checked.model_b if checked.mode == "two checkpoints" else None,
            checked.steps, checked.seconds, prompt, bool(checked.vocoder_matched))
        pair = f"`{first.name}` vs " + (f"`{self.registry.resolve(request.model_b).name}`"
                                         if request.mode == "two checkpoints" else "real clips")
        return f"Saved: listeners now hear {pair}, {plural(checked.steps, 'step')}."

    def settings_dict(self) -> dict[str, object]:
        """`current_request` as keyword arguments (mode, model_a, model_b, steps, seconds, prompt,
        vocoder_matched)."""
        return asdict(self.current_request())

    # ---- a trial ------------------------------------------------------------------------------

    def listening_prompt(self, choices: list[ModelChoice], models: list[AudioGenerator]) -> str:
        """A training caption to prompt the text side(s) of a pair with: one the unconditional side was
        trained on (so both sides make the same kind of clip), else one of the first model's; "" when no
        folder lists training captions."""
        unconditional = [choice for choice, model in zip(choices, models) if not model.capabilities.text]
        for choice in unconditional + choices:
            captions = self.training_captions(choice)
            if captions and captions.examples:
                return captions.examples[self.rng.randrange(len(captions.examples))]
        return ""

    def side(self, choice: ModelChoice, seed: int, steps: int, seconds: float, prompt: str, bpm: float | None,
             reporter: StepReporter, index: int) -> tuple[np.ndarray, int]:
        """One generated side's clip: float32 `[channels, samples]` and its rate in Hz."""
        with self.registry.use(choice.label) as (_, model):
            generated = generate(model, seed, steps, prompt=prompt if model.capabilities.text else "",
                                 seconds_total=seconds, progress_callback=reporter.for_call(index), bpm=bpm)
            return generated.audios[0], generated.sample_rate

    def pick_sides(self, request: ListeningTrialRequest) -> tuple[list[ModelChoice], Path | None]:
        """The model(s) of a trial and, for generated vs real, a random real clip; `ValueError` when the
        pair cannot be made."""
        first = self.registry.resolve(request.model_a)
        if request.mode == "two checkpoints":
            if request.model_b in (None, ""):
                raise ValueError("Checkpoint 2: pick a second checkpoint to compare with checkpoint 1.")
            second = self.registry.resolve(request.model_b)
            if second.source == first.source:
                raise ValueError("Pick two different checkpoints to compare.")
            return [first, second], None
        clips = self.real_clips_for(first)
        if not clips:
            raise ValueError(f"No real clips found under {public_path(self.real_dir or '(no folder given)')}: "
                             "compare two checkpoints, or start the app with --real-dir pointing at a folder "
                             "of WAV/FLAC files.")
        return [first], clips[self.rng.randrange(len(clips))]

    def trial_prompt(self, request: ListeningTrialRequest, choices: list[ModelChoice], models: list[AudioGenerator],
                     clip: Path | None) -> str:
        """The prompt of the text side(s): the request's, the real clip's caption, or a training caption."""
        prompt = request.prompt
        text_sides = [choice for choice, model in zip(choices, models) if model.capabilities.text]
        if clip is not None and text_sides:
            prompt = self.caption_of(clip) or prompt
        if text_sides and not prompt:
            prompt = self.listening_prompt(choices, models)
        if text_sides and not prompt:
            raise ValueError(f"{text_sides[0].name} is a text model: write a prompt under Settings (no training "
                             "captions were found to draw one from).")
        return prompt

    def real_side(self, request: ListeningTrialRequest, first: ModelChoice, clip: Path, seed: int, seconds: float,
                  prompt: str) -> Pair:
        """A random segment of `clip` as long as the generated side, at the model's rate, through the model's
        own mel + Griffin-Lim when `vocoder_matched` (mel models)."""
        real_clip = clip.relative_to(self.real_dir).as_posix()
        with self.registry.use(first.label) as (_, model):
            rate = model.capabilities.sample_rate
            try:
                real = load_audio(clip, rate, max_seconds=600.0)
            except ValueError as error:
                raise ValueError(f"Real clip {real_clip}: {error}") from None
            length = min(len(real), round(seconds * rate))
            start = self.rng.randrange(len(real) - length + 1)
            real = real[start : start + length]
            matched = bool(request.vocoder_matched) and model.capabilities.griffin_lim
            if matched:  # strength 0: the input's own mel reconstruction, no denoising
                real = generate(model, seed, 1, prompt=prompt, audio=real, audio_sampling_rate=rate,
                                strength=0.0).audios[0, 0][:length]
        return Pair((first.name, REAL), [(real[None], rate)], length / rate, real_clip, matched)

    def make_pair(self, request: ListeningTrialRequest, choices: list[ModelChoice], clip: Path | None, seed: int,
                  seconds: float, prompt: str, reporter: StepReporter) -> Pair:
        """Both sides of a trial, generated (and read) with one seed and settings."""
        tempo = tempo_of_prompt(prompt) if prompt else None
        if clip is None:
            sides = [self.side(choice, seed, request.steps, seconds, prompt, tempo, reporter, index)
                     for index, choice in enumerate(choices)]
            return Pair((choices[0].name, choices[1].name), sides, seconds)
        real = self.real_side(request, choices[0], clip, seed, seconds, prompt)
        generated = self.side(choices[0], seed, request.steps, real.seconds, prompt, tempo, reporter, 0)
        real.audios.insert(0, generated)
        return real

    @staticmethod
    def match(pair: Pair, two_generated: bool, reporter: StepReporter) -> tuple[list[np.ndarray], int, int, float]:
        """Both sides at one rate, channel count, length and loudness: (audios, rate in Hz, samples, level
        in dBFS); `ValueError` for a near-silent generated side, which loudness matching would lift."""
        rate = min(audio_rate for _, audio_rate in pair.audios)
        audios = [audio if audio_rate == rate else resample(audio, audio_rate, rate)
                  for audio, audio_rate in pair.audios]
        if audios[0].shape[0] != audios[1].shape[0]:
            audios = [audio.mean(axis=0, keepdims=True) for audio in audios]
        length = min(audio.shape[-1] for audio in audios)
        generated = audios if two_generated else audios[:1]
        if any("silent" in take_reasons(measure_take(audio, rate)) for audio in generated):
            # Loudness matching would lift its noise floor to the other clip's level.
            raise ValueError("A generated clip came out near-silent, so this pair is not used. Press 'Next pair' "
                             "for another.")
        reporter.check()  # a request cancelled during the last step writes nothing
        try:
            audios, level = match_loudness([audio[:, :length] for audio in audios])
        except ValueError as error:
            raise ValueError(f"{error} Try another pair.") from None
        return audios, rate, length, level

    def next_pair(self, request: ListeningTrialRequest, feedback: Feedback | None = None) -> TrialResult:
        """Make the next blind pair (see `ListeningTrialRequest`). Every setting is checked before anything
        is generated; the sides are random and the files neutrally named."""
        # 1. Check inputs
        request.check_mode()
        self.registry.resolve(request.model_a)
        request = request.check(self.workspace.limits)
        choices, clip = self.pick_sides(request)
        feedback, notes, reporter = start_job(feedback, 2, "Clip", "Loading...")
        # 2. Check the settings against the models, still before generating
        models = [self.registry.load(choice.label) for choice in choices]
        for model in models:
            self.workspace.check_steps(request.steps, model.capabilities)
        prompt = self.trial_prompt(request, choices, models, clip)
        seconds = request.seconds or default_seconds(models[0].capabilities,
                                                     tempo_of_prompt(prompt) if prompt else None)
        self.workspace.plan(reporter, choices[0], models[0].capabilities, 2, seconds, request.steps, "Clips",
                            "Clip length")
        seed = pick_seed(None, True, self.rng)
        # 3. Generate both sides, 4. at the same rate, channels, length and level
        pair = self.make_pair(request, choices, clip, seed, seconds, prompt, reporter)
        audios, rate, length, level = self.match(pair, clip is None, reporter)
        # 5. Random sides, neutral files
        system_a, system_b = assign_sides(pair.systems[0], pair.systems[1], self.rng)
        by_system = dict(zip(pair.systems, audios))
        trial_id = new_trial_id()
        clip_a = self.workspace.store.write_plain(f"trial-{trial_id}-A", by_system[system_a].T, rate)
        clip_b = self.workspace.store.write_plain(f"trial-{trial_id}-B", by_system[system_b].T, rate)
        settings = settings_id(request.mode, [choice.source for choice in choices], request.steps, request.seconds,
                               request.prompt, bool(request.vocoder_matched) and clip is not None)
        trial = Trial(trial_id, "checkpoints" if clip is None else REAL, system_a, system_b, str(clip_a),
                      str(clip_b), seed, length / rate, request.steps, prompt, pair.real_clip, pair.matched, level,
                      utc_now(), settings=settings)
        self.trials.add(trial)
        reporter.report(1.0, "Ready")
        heard = f" Both were made from: *{prompt}*." if prompt and clip is None else ""
        status = status_text([f"Trial `{trial_id}` ready: listen to both, then answer.{heard}"], notes)
        return TrialResult(trial, str(clip_a), str(clip_b), status)

    # ---- answers and results --------------------------------------------------------------------

    def answer(self, trial: Trial | None, answer: str, listener: str = "") -> tuple[Trial | None, str]:
        """Record an answer ("A", "B" or "same") to the current trial.

        Returns:
            The trial marked answered (so a second click does not count twice) and a status line. Which
            system was which stays hidden, so later answers are not swayed by it.
        """
        if answer not in ("A", "B", "same"):
            raise ValueError(f"Answer must be A, B or same, got {answer!r}.")
        if trial is None:
            raise ValueError("No pair to answer yet: press 'Next pair' first.")
        if trial.answered:
            raise ValueError("This pair is answered already: press 'Next pair' for a new one.")
        if len(str(listener or "")) > 200:
            raise ValueError("Listener: keep the name under 200 characters.")
        self.answers.record(trial, answer, str(listener or ""))
        trial.answered = True
        # Nothing here may tell the listener which system was on which side, or how others answered.
        return trial, f"Recorded **{answer}** for trial `{trial.trial_id}`. Press 'Next pair' to go on."

    def answer_by_id(self, trial_id: str, answer: str, listener: str = "") -> Trial:
        """Record an answer to a trial handed out earlier, by its id (API clients keep no page state)."""
        trial = self.trials.get(trial_id)
        if trial is None:
            raise ValueError(f"Trial id {str(trial_id)[:40]!r} is unknown (or too old): call /listening_next first.")
        trial, _ = self.answer(trial, answer, listener)
        return trial

    def results(self, key: str | None, client: str = "") -> tuple[list[PairSummary], Path | None]:
        """The answers so far, for the experimenter only: the per-pair summaries (per pair and settings)
        and a copy of the answers CSV (None before the first answer); `ValueError` unless `key` is the
        experimenter key."""
        self.check_results_key(key, client)
        if not self.answers.path.exists():
            return [], None
        # A copy per request, in a folder of the served output store with an unguessable name: the log's
        # own folder is blocked from serving (`app.launch_options`). Copies older than EXPORT_MAX_AGE_S are
        # removed, never a fresh one, so experimenters reading at once do not break each other's download.
        exports = self.workspace.store.root / "results"
        remove_old_exports(exports, EXPORT_MAX_AGE_S)
        export = exports / secrets.token_hex(16) / "answers.csv"
        export.parent.mkdir(parents=True)
        rows = self.answers.rows()
        shutil.copyfile(self.answers.path, export)
        return summarize(rows), export
