"""The page's handlers: each tab's click as a typed request (`studio.requests`) run by its workflow
(`studio.loops`, `studio.text_to_audio`, `studio.audio_to_audio`, `studio.listening`), with Gradio's
progress bar, toasts and cancellation check, and a refused value (`ValueError`) shown as `gr.Error`.

The positional signatures are the page's wiring (`app.py`); the named API (`webapp.api`) calls the
same methods.
"""
from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import gradio as gr

from models.generator import Capabilities
from music.export import DEFAULT_FORMAT
from studio.audio_to_audio import audio_to_audio
from studio.captions import capabilities_markdown
from studio.generation import ModelChoice, Workspace
from studio.listening import ListeningTest
from studio.loops import make_loops
from studio.outputs import OutputStore
from studio.progress import Progress
from studio.requests import (
    DEFAULT_GUIDANCE,
    EXPORT_CHANNEL_CHOICES,
    EXPORT_FORMAT_CHOICES,
    EXPORT_RATE_CHOICES,
    KEY_CHOICES,
    MODE_HELP,
    MODEL_DEFAULT_STEPS,
    MODES,
    NO_KEY,
    PROMPT_KEY,
    SCHEDULER_CHOICES,
    AudioToAudioRequest,
    ListeningTrialRequest,
    LoopsRequest,
    StudioLimits,
    TextToAudioRequest,
)
from studio.results import Result, TrialResult
from studio.text_to_audio import text_to_audio
from studio.trials import AnswerLog, PairSummary, Trial
from webapp.progress import page_feedback
from webapp.registry import ModelRegistry

__all__ = [
    "EXPORT_CHANNEL_CHOICES",
    "EXPORT_FORMAT_CHOICES",
    "EXPORT_RATE_CHOICES",
    "KEY_CHOICES",
    "MODES",
    "MODE_HELP",
    "NO_KEY",
    "PROMPT_KEY",
    "SCHEDULER_CHOICES",
    "Result",
    "Studio",
    "StudioLimits",
    "user_errors",
]


def client_of(http: gr.Request | None) -> str:
    """The address a request came from (the current Gradio event's when `http` is None; "" outside an
    HTTP request, e.g. in tests)."""
    if http is None:
        from gradio.context import LocalContext

        http = LocalContext.request.get(None)
    client = getattr(http, "client", None)
    return str(getattr(client, "host", "") or "")


# Longest error message shown; a value quoted whole by a lower layer is not echoed back past it.
MAX_MESSAGE_CHARS = 1000


@contextmanager
def user_errors() -> Iterator[None]:
    """A value the studio refuses (`ValueError`) as `gr.Error`, which the page shows with its message."""
    try:
        yield
    except gr.Error:
        raise
    except ValueError as error:
        message = str(error)
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[:MAX_MESSAGE_CHARS] + "..."
        raise gr.Error(message) from None


class Studio:
    """The page's handlers around the studio's workspace (models, outputs, limits, budget) and its
    listening test.

    Args:
        registry: the model picker and pipeline cache.
        store: where output files go.
        limits: what one request may ask for.
        answers: the listening test's answer log.
        real_dir: folder of real clips for "generated vs real" trials (searched recursively).
        rng: random source of sides and real clips (seeded in tests).
        results_key: the experimenter's key to the listening-test results (a random one when None).
    """

    def __init__(
        self,
        registry: ModelRegistry,
        store: OutputStore,
        limits: StudioLimits | None = None,
        answers: AnswerLog | None = None,
        real_dir: str | Path | None = None,
        rng: random.Random | None = None,
        results_key: str | None = None,
    ) -> None:
        self.workspace = Workspace(registry, store, limits or StudioLimits())
        answers = answers or AnswerLog(store.root / "listening_test" / "answers.csv")
        self.listening = ListeningTest(self.workspace, answers, real_dir, rng, results_key)

    # ---- what the page reads ------------------------------------------------------------------

    @property
    def registry(self) -> ModelRegistry:
        return self.workspace.registry

    @registry.setter
    def registry(self, registry: ModelRegistry) -> None:
        self.workspace.registry = registry

    @property
    def store(self) -> OutputStore:
        return self.workspace.store

    @property
    def limits(self) -> StudioLimits:
        return self.workspace.limits

    @property
    def budget(self):
        return self.workspace.budget

    @property
    def answers(self) -> AnswerLog:
        return self.listening.answers

    @property
    def real_dir(self) -> Path | None:
        return self.listening.real_dir

    @property
    def results_key(self) -> str:
        return self.listening.results_key

    # ---- the tabs -------------------------------------------------------------------------------

    def generate_loops(self, model: str, variations: int = 1, seed: int | None = None, randomize_seed: bool = True,
                       steps: int = MODEL_DEFAULT_STEPS, scheduler: str | None = None, repeats: int = 4,
                       clip_seconds: float = 0.0,
                       bpm: float = 0.0, prompt: str = "", target_key: str = "", export_rate: object = "model rate",
                       export_channels: object = "as generated", export_format: str = DEFAULT_FORMAT,
                       progress: Progress | None = None) -> Result:
        """The Loops tab (`studio.loops.make_loops`; the parameters are `LoopsRequest`'s)."""
        request = LoopsRequest(model, variations, seed, randomize_seed, steps, scheduler, repeats, clip_seconds, bpm,
                               prompt, target_key, export_rate, export_channels, export_format)
        return self.run_loops(request, progress)

    def run_loops(self, request: LoopsRequest, progress: Progress | None = None) -> Result:
        """A `LoopsRequest` through `studio.loops.make_loops`, reported to the page."""
        with user_errors(), self.store.hold():  # its files are not pruned while it runs
            return make_loops(self.workspace, request, page_feedback(progress))

    def text_to_audio(self, model: str, prompt: str, negative_prompt: str = "", seconds_total: float = 5.0,
                      seconds_start: float = 0.0, guidance_scale: float = DEFAULT_GUIDANCE,
                      steps: int = MODEL_DEFAULT_STEPS, scheduler: str | None = None, seed: int | None = None,
                      randomize_seed: bool = True,
                      num_outputs: int = 1, bpm: float = 0.0, target_key: str = "",
                      export_rate: object = "model rate", export_channels: object = "as generated",
                      export_format: str = DEFAULT_FORMAT, progress: Progress | None = None) -> Result:
        """The Text to audio tab (`studio.text_to_audio`; the parameters are `TextToAudioRequest`'s)."""
        request = TextToAudioRequest(model, prompt, negative_prompt, seconds_total, seconds_start, guidance_scale,
                                     steps, scheduler, seed, randomize_seed, num_outputs, bpm, target_key,
                                     export_rate, export_channels, export_format)
        return self.run_text_to_audio(request, progress)

    def run_text_to_audio(self, request: TextToAudioRequest, progress: Progress | None = None) -> Result:
        """A `TextToAudioRequest` through `studio.text_to_audio`, reported to the page."""
        with user_errors(), self.store.hold():  # its files are not pruned while it runs
            return text_to_audio(self.workspace, request, page_feedback(progress))

    def audio_to_audio(self, model: str, audio_path: str | Path | None, mode: str = "variation",
                       strength: float = 0.5, prompt: str = "", negative_prompt: str = "", region_start: float = 0.0,
                       region_end: float = 1.0, extend_seconds: float = 5.0, steps: int = 20,
                       scheduler: str | None = None, guidance_scale: float = 3.0, seed: int | None = None,
                       randomize_seed: bool = True, progress: Progress | None = None) -> Result:
        """The Audio to audio tab (`studio.audio_to_audio`; the parameters are `AudioToAudioRequest`'s)."""
        request = AudioToAudioRequest(model, audio_path, mode, strength, prompt, negative_prompt, region_start,
                                      region_end, extend_seconds, steps, scheduler, guidance_scale, seed,
                                      randomize_seed)
        return self.run_audio_to_audio(request, progress)

    def run_audio_to_audio(self, request: AudioToAudioRequest, progress: Progress | None = None) -> Result:
        """An `AudioToAudioRequest` through `studio.audio_to_audio`, reported to the page."""
        with user_errors(), self.store.hold():  # its files are not pruned while it runs
            return audio_to_audio(self.workspace, request, page_feedback(progress))

    def uploaded_path(self, audio: object) -> str:
        """The server path of a file an API client sent (`{"path": ...}` after `/gradio_api/upload`).
        It must lie in Gradio's upload folder: a client may not point the server at its other files."""
        path = audio.get("path") if isinstance(audio, dict) else getattr(audio, "path", audio)
        if not isinstance(path, str) or not path:
            raise gr.Error("Audio: upload a file (gradio_client.handle_file('clip.wav')).")
        from gradio.utils import get_upload_folder, is_in_or_equal

        if not is_in_or_equal(path, get_upload_folder()):
            raise gr.Error("Audio: send the file itself (gradio_client.handle_file), not a server path.")
        return path

    # ---- model facts for the pickers ------------------------------------------------------------

    def example_prompts(self, model: str | None) -> list[str]:
        """Training captions of `model` to offer as example prompts ([] when unknown)."""
        try:
            captions = self.listening.training_captions(self.registry.resolve(model))
        except gr.Error:
            return []
        return list(captions.examples) if captions else []

    def model_capabilities(self, model: str | None) -> str:
        """A short Markdown statement of what `model` was trained on and cannot do."""
        try:
            choice = self.registry.resolve(model)
        except gr.Error:
            return ""
        return capabilities_markdown(self.listening.training_captions(choice), choice.text_conditioned)

    def loaded_capabilities(self, model: str | None, load: bool = True) -> Capabilities | None:
        """`model`'s backend capabilities, or None when it is unknown or not loaded yet: a model on disk is loaded
        when `load`; a hub model is only downloaded when used."""
        try:
            choice = self.registry.resolve(model)
            if not self.registry.is_loaded(model) and (not load or choice.origin in ("hub", "custom")):
                return None
            return self.registry.load(model).capabilities
        except (gr.Error, ValueError):
            return None

    def model_default_steps(self, model: str | None, load: bool = True) -> int:
        """`model`'s own default step count (its checkpoint's choice) within the server's limit, or
        `MODEL_DEFAULT_STEPS` (0: resolved when the request runs) when it is not loaded (`loaded_capabilities`)."""
        capabilities = self.loaded_capabilities(model, load)
        if capabilities is None:
            return MODEL_DEFAULT_STEPS
        return self.workspace.check_steps(MODEL_DEFAULT_STEPS, capabilities)

    def model_offers(self, model: str | None, load: bool = True) -> tuple[list[str], float]:
        """(Audio to audio modes, longest Text to audio duration in seconds) that `model` supports, from
        its backend's capabilities (`loaded_capabilities`); until it is loaded, every mode and
        `limits.max_seconds` are offered (its request then gets the backend's clear refusal)."""
        capabilities = self.loaded_capabilities(model, load)
        if capabilities is None:
            return list(MODES), float(self.limits.max_seconds)
        offered = {"variation": capabilities.audio_to_audio, "inpaint region": capabilities.inpaint,
                   "outpaint around region": capabilities.inpaint, "continue": capabilities.continuation}
        modes = [mode for mode in MODES if offered[mode]] or list(MODES)
        return modes, float(min(self.limits.max_seconds, capabilities.max_duration_s))

    # ---- the listening test ----------------------------------------------------------------------

    def real_clips(self) -> list[Path]:
        return self.listening.real_clips()

    def real_clips_for(self, choice: ModelChoice) -> list[Path]:
        return self.listening.real_clips_for(choice)

    def listening_defaults(self) -> dict[str, str | None]:
        """`studio.listening.ListeningTest.defaults`: {"mode", "model_a", "model_b", "modes"}."""
        return self.listening.defaults()

    def listening_settings(self) -> dict[str, object]:
        """What "Next pair" makes now, as `listening_next`'s keyword arguments."""
        return self.listening.settings_dict()

    def set_listening_settings(self, key: str | None, mode: str, model_a: str, model_b: str | None = None,
                               steps: int = 20, seconds: float = 0.0, prompt: str = "",
                               vocoder_matched: bool = True, http: gr.Request | None = None) -> str:
        """Save what every listener's "Next pair" makes (the experimenter's key only); a status line."""
        request = ListeningTrialRequest(mode, model_a, model_b, steps, seconds, prompt, vocoder_matched)
        with user_errors():
            return self.listening.save_settings(key, request, client_of(http))

    def listening_next(self, mode: str, model_a: str, model_b: str | None = None, steps: int = 20,
                       seconds: float = 0.0, prompt: str = "", vocoder_matched: bool = True,
                       progress: Progress | None = None) -> TrialResult:
        """The next blind pair (`studio.listening`; the parameters are `ListeningTrialRequest`'s)."""
        request = ListeningTrialRequest(mode, model_a, model_b, steps, seconds, prompt, vocoder_matched)
        return self.run_listening_trial(request, progress)

    def run_listening_trial(self, request: ListeningTrialRequest, progress: Progress | None = None) -> TrialResult:
        """A `ListeningTrialRequest` through `studio.listening.ListeningTest.next_pair`, reported to the page."""
        with user_errors(), self.store.hold():  # its files are not pruned while it runs
            return self.listening.next_pair(request, page_feedback(progress))

    def listening_answer(self, trial: Trial | None, answer: str, listener: str = "") -> tuple[Trial | None, str]:
        """Record an answer ("A", "B" or "same") to the page's current trial; (trial, status line)."""
        with user_errors():
            return self.listening.answer(trial, answer, listener)

    def listening_answer_by_id(self, trial_id: str, answer: str, listener: str = "") -> Trial:
        """Record an answer to a trial handed out earlier, by its id (API clients keep no page state)."""
        with user_errors():
            return self.listening.answer_by_id(trial_id, answer, listener)

    def listening_results(self, key: str | None, http: gr.Request | None = None
                          ) -> tuple[list[PairSummary], Path | None]:
        """The per-pair summaries and a copy of the answers CSV, for the experimenter's key only (wrong
        keys are rate-limited per client address)."""
        with user_errors():
            return self.listening.results(key, client_of(http))
