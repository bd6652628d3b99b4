"""The studio's programmatic API, apart from the page's layout: one named endpoint per task, each
returning one JSON object with named fields (audio files, seeds, sample rate in Hz, durations in
seconds, BPM, loop files and the settings used). Each builds the same typed request as its tab
(`studio.requests`), by keyword, and runs the same workflow.

    from gradio_client import Client
    result = Client("http://127.0.0.1:7860/").predict(model="checkpoints/loops", seed=7, api_name="/loops")
    result["outputs"][0]["audio"], result["outputs"][0]["bpm"], result["outputs"][0]["loop"]

Endpoints (`register_api`): `/models`, `/loops`, `/text_to_audio`, `/audio_to_audio`,
`/listening_next`, `/listening_answer`, `/listening_results`. Bad values are refused with an error
that names the field and the range, as on the page.
"""
from __future__ import annotations

import functools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
import soundfile as sf
from gradio.data_classes import FileData

from music.export import DEFAULT_FORMAT
from music.loops import read_wav_metadata
from studio.requests import (
    DEFAULT_GUIDANCE,
    MODEL_DEFAULT_STEPS,
    PROMPT_KEY,
    AudioToAudioRequest,
    ListeningTrialRequest,
    LoopsRequest,
    TextToAudioRequest,
)
from studio.results import Output, Result
from webapp.handlers import Studio, client_of

# Metadata that describes the file rather than the request (or holds a server path).
NOT_SETTINGS = {"task", "title", "software", "comment", "created_utc", "model_source", "variation"}
TEXT_SETTINGS = {"model", "prompt", "negative_prompt", "scheduler", "mode", "input_file"}
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE]-?\d+)?")


def file_field(path: str | Path | None) -> FileData | None:
    """A file in a result: `gradio_client` downloads it and puts its local path in the field."""
    return None if path is None else FileData(path=str(path), orig_name=Path(path).name)


def settings_of(audio_path: str | Path) -> dict[str, Any]:
    """The settings an output was made with, read back from its WAV metadata (the one record of them),
    numbers as numbers."""
    settings: dict[str, Any] = {}
    for key, text in read_wav_metadata(audio_path).items():
        if key in NOT_SETTINGS:
            continue
        if key not in TEXT_SETTINGS and _NUMBER.fullmatch(text):
            settings[key] = float(text) if any(mark in text for mark in ".eE") else int(text)
        elif key not in TEXT_SETTINGS and text.startswith("["):
            settings[key] = text  # regions as JSON text, e.g. "[[\"0\", \"1.5\"]]"
        else:
            settings[key] = text
    return settings


def output_fields(output: Output) -> dict[str, Any]:
    """One generated clip: its file, seed, rate (Hz), length (s), and for loops its BPM and loop file."""
    return {
        "audio": file_field(output.audio_path),
        "seed": output.seed,
        "sample_rate": sf.info(str(output.audio_path)).samplerate,
        "duration_s": round(output.seconds, 6),
        "bpm": None if output.bpm is None else round(float(output.bpm), 3),
        "loop": file_field(output.loop_path),
        "loop_info": output.loop_info,
        "key_info": output.key_info or None,
        "loop_quality": dict(output.quality) if output.quality else None,
        "spectrogram_title": output.title,
        "quality_gate": output.take.to_dict() if output.take else None,
    }


def first_settings(result: Result) -> dict[str, Any]:
    """The settings of a click's first output: as the handler recorded them, else from its WAV metadata."""
    if not result.outputs:
        return {}
    recorded = {key: value for key, value in (result.outputs[0].settings or {}).items() if key not in NOT_SETTINGS}
    return recorded or settings_of(result.outputs[0].audio_path)


def result_fields(endpoint: str, model: str, result: Result) -> dict[str, Any]:
    """A generation click as one JSON object."""
    return {
        "endpoint": endpoint,
        "model": model,
        "seed": result.seed,
        "outputs": [output_fields(output) for output in result.outputs],
        "settings": first_settings(result),
        "zip": file_field(result.zip_path),
        "warnings": list(result.notes),
        "regenerated": result.regenerated,
        "status": result.status,
    }


class StudioAPI:
    """The API endpoints around a `Studio`; every method is one endpoint (see `register_api`).

    Model names: a picker label ("checkpoints/loops · bundled"), the same without the origin note
    ("checkpoints/loops"), a hub id, or "" for the tab's default model.
    """

    def __init__(self, studio: Studio) -> None:
        self.studio = studio

    def _model(self, model: str | None, needs_text: bool | None) -> tuple[str, str]:
        """(value for the handlers, the model's name for the result)."""
        value = model if model not in (None, "") else self.studio.registry.default_label(needs_text)
        return value, self.studio.registry.resolve(value).name

    # Every method ends in `*_, progress=gr.Progress()`: `gr.api` describes the parameters before `*_`
    # only, and Gradio still hands the method a progress tracker (shown by `Client.submit` jobs).

    def models(self, rescan: bool = False) -> dict:
        """The models this server offers: name, picker label, where it comes from, whether it takes a
        prompt, example prompts from its training captions and what it can and cannot do. rescan: search
        the model folders again first (checkpoints a training run saved since)."""
        studio = self.studio
        if rescan:
            studio.registry.refresh()
        return {"models": [
            {"name": choice.name, "label": choice.label, "origin": choice.origin,
             "text_conditioned": choice.text_conditioned, "example_prompts": studio.example_prompts(choice.label),
             "capabilities": studio.model_capabilities(choice.label)}
            for choice in studio.registry.choices
        ]}

    def loops(self, model: str = "", prompt: str = "", variations: int = 1, seed: int | None = None,
              steps: int = MODEL_DEFAULT_STEPS, scheduler: str = "model default", clip_seconds: float = 0.0,
              bpm: float = 0.0,
              repeats: int = 4, key: str = PROMPT_KEY, export_rate: str = "model rate",
              export_channels: str = "as generated", export_format: str = DEFAULT_FORMAT,
              *_, progress=gr.Progress()) -> dict:  # noqa: B008 (Gradio's progress tracker)
        """Seamless loops (Loops tab). seed: None for a random one (output i uses seed + i). steps: 0 for the
        model's own default (its checkpoint's). clip_seconds:
        0 for two bars at the tempo, else at least one bar. bpm: 0 for the prompt's or the model's tempo.
        key: "from the prompt" (the key the prompt names, if any), "keep" or a target key
        ("A minor"). export_rate: "model rate", "44100" or "48000";
        export_channels: "as generated", "mono" or "stereo"; export_format: e.g. "WAV 24-bit", "FLAC 16-bit".
        Returns {endpoint, model, seed, outputs: [{audio, seed, sample_rate, duration_s, bpm, loop,
        loop_info, key_info, loop_quality, quality_gate}], settings, zip, warnings, regenerated, status}."""
        value, name = self._model(model, False)
        request = LoopsRequest(model=value, variations=variations, seed=seed, randomize_seed=seed is None,
                               steps=steps, scheduler=scheduler, repeats=repeats, clip_seconds=clip_seconds, bpm=bpm,
                               prompt=prompt, target_key=key, export_rate=export_rate,
                               export_channels=export_channels, export_format=export_format)
        result = self.studio.run_loops(request, progress)
        return result_fields("loops", name, result)

    def text_to_audio(self, prompt: str, model: str = "", negative_prompt: str = "", seconds_total: float = 5.0,
                      seconds_start: float = 0.0, guidance_scale: float = DEFAULT_GUIDANCE,
                      steps: int = MODEL_DEFAULT_STEPS, scheduler: str = "model default", seed: int | None = None,
                      num_outputs: int = 1,
                      bpm: float = 0.0, key: str = PROMPT_KEY, export_rate: str = "model rate",
                      export_channels: str = "as generated", export_format: str = DEFAULT_FORMAT,
                      *_, progress=gr.Progress()) -> dict:  # noqa: B008 (Gradio's progress tracker)
        """Clips of exactly seconds_total seconds from a prompt (Text to audio tab). steps: 0 for the model's own
        default (its checkpoint's). bpm: the tempo (0: the
        prompt's, for tempo-normalised models); key and export_*: as for /loops. Returns {endpoint, model,
        seed, outputs: [{audio, seed, sample_rate, duration_s, bpm, key_info, quality_gate}], settings, zip,
        warnings, regenerated, status}."""
        value, name = self._model(model, True)
        request = TextToAudioRequest(model=value, prompt=prompt, negative_prompt=negative_prompt,
                                     seconds_total=seconds_total, seconds_start=seconds_start,
                                     guidance_scale=guidance_scale, steps=steps, scheduler=scheduler, seed=seed,
                                     randomize_seed=seed is None, num_outputs=num_outputs, bpm=bpm, target_key=key,
                                     export_rate=export_rate, export_channels=export_channels,
                                     export_format=export_format)
        result = self.studio.run_text_to_audio(request, progress)
        return result_fields("text_to_audio", name, result)

    def audio_to_audio(self, audio: FileData, mode: str = "variation", model: str = "", strength: float = 0.5,
                       prompt: str = "", negative_prompt: str = "", region_start: float = 0.0,
                       region_end: float = 1.0, extend_seconds: float = 5.0, steps: int = 20,
                       scheduler: str = "model default", guidance_scale: float = 3.0, seed: int | None = None,
                       *_, progress=gr.Progress()) -> dict:  # noqa: B008 (Gradio's progress tracker)
        """Vary, inpaint, outpaint or continue an uploaded clip (`gradio_client.handle_file`). mode:
        "variation", "inpaint region", "outpaint around region" or "continue"; regions in seconds.
        Returns {endpoint, model, seed, outputs: [{audio (32-bit float WAV), seed, sample_rate,
        duration_s}], settings, warnings, status}."""
        value, name = self._model(model, None)
        path = self.studio.uploaded_path(audio)
        request = AudioToAudioRequest(model=value, audio_path=path, mode=mode, strength=strength, prompt=prompt,
                                      negative_prompt=negative_prompt, region_start=region_start,
                                      region_end=region_end, extend_seconds=extend_seconds, steps=steps,
                                      scheduler=scheduler, guidance_scale=guidance_scale, seed=seed,
                                      randomize_seed=seed is None)
        result = self.studio.run_audio_to_audio(request, progress)
        return result_fields("audio_to_audio", name, result)

    def listening_next(self, mode: str = "", model_a: str = "", model_b: str = "", steps: int | None = None,
                       seconds: float | None = None, prompt: str | None = None, vocoder_matched: bool | None = None,
                       key: str = "", http: gr.Request | None = None,
                       *_, progress=gr.Progress()) -> dict:  # noqa: B008 (Gradio's progress tracker)
        """The next blind pair of the listening test, made with the experimenter's comparison (saved on
        the experimenter's page, else the test's defaults: generated vs real clips when the server has
        them, else two checkpoints). mode, model_a, model_b, steps, seconds, prompt, vocoder_matched:
        another comparison, with the experimenter's key only (its trials are summarized apart). Returns
        {trial_id, clip_a, clip_b, duration_s, sample_rate, prompt, status}; which system is which stays
        on the server."""
        chosen = {"mode": mode or None, "model_a": model_a or None, "model_b": model_b or None, "steps": steps,
                  "seconds": seconds, "prompt": prompt or None, "vocoder_matched": vocoder_matched}
        chosen = {name: value for name, value in chosen.items() if value is not None}
        current = self.studio.listening_settings()
        if chosen or key:
            try:
                self.studio.listening.check_results_key(key, client_of(http))
            except ValueError:
                raise gr.Error("The listening test's comparison is the experimenter's (set on the experimenter "
                               "page): call /listening_next without mode, models or settings, or give the "
                               "experimenter key.", print_exception=False) from None
            if "mode" in chosen or "model_a" in chosen:  # another comparison: the model defaults, not the saved
                current = {**current, "model_b": None}
        request = ListeningTrialRequest(**{**current, **chosen})
        result = self.studio.run_listening_trial(request, progress)
        trial = result.trial
        return {"trial_id": trial.trial_id, "clip_a": file_field(result.clip_a), "clip_b": file_field(result.clip_b),
                "duration_s": round(trial.seconds, 6), "sample_rate": sf.info(result.clip_a).samplerate,
                "prompt": trial.prompt, "status": result.status}

    def listening_answer(self, trial_id: str, answer: str, listener: str = "") -> dict:
        """Answer a trial: answer "A", "B" or "same". Returns {trial_id, answer, recorded}."""
        trial = self.studio.listening_answer_by_id(trial_id, answer, listener)
        return {"trial_id": trial.trial_id, "answer": answer, "recorded": True}

    def listening_results(self, key: str, http: gr.Request | None = None) -> dict:
        """The listening test's results, for the experimenter's key only (`--listening-key`). Returns
        {answers, pairs: [{first, second, trials, first_wins, second_wins, same, win_rate, ci_low, ci_high,
        p_value, side_a_share}], answers_csv}."""
        summaries, path = self.studio.listening_results(key, http)
        return {"answers": sum(summary.trials for summary in summaries),
                "pairs": [summary.as_dict() for summary in summaries], "answers_csv": file_field(path)}


def as_file_records(value: object) -> object:
    """`value` with every `FileData` as the record Gradio recognises in an endpoint's result (a dict with
    `meta._type`), so Gradio copies the file into its cache and serves it by URL."""
    if isinstance(value, FileData):
        return value.model_dump()
    if isinstance(value, dict):
        return {key: as_file_records(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_file_records(item) for item in value]
    return value


def served(endpoint: Callable) -> Callable:
    """`endpoint` whose result names its files as Gradio serves them (`/gradio_api/file=` in its cache),
    never by their path in `--output-dir`: a raw API result shows no server folder."""

    @functools.wraps(endpoint)
    def call(*args, **kwargs):
        return as_file_records(endpoint(*args, **kwargs))

    return call


GENERATION_ENDPOINTS = ("loops", "text_to_audio", "audio_to_audio", "listening_next")
OTHER_ENDPOINTS = ("models", "listening_answer", "listening_results")


def register_api(studio: Studio, wrap: Callable[[Callable], Callable] = lambda function: function,
                 queue_options: dict[str, dict] | None = None) -> StudioAPI:
    """Add the API endpoints to the Blocks being built (call inside `with gr.Blocks()`).

    Args:
        wrap: put around each generation endpoint (e.g. `spaces.GPU` on ZeroGPU Spaces).
        queue_options: per endpoint name, `concurrency_limit` / `concurrency_id` (generation endpoints
            share their tab's queue).
    """
    api = StudioAPI(studio)
    queue_options = queue_options or {}
    for name in GENERATION_ENDPOINTS:
        gr.api(wrap(served(getattr(api, name))), api_name=name, **queue_options.get(name, {}))
    for name in OTHER_ENDPOINTS:
        gr.api(served(getattr(api, name)), api_name=name, concurrency_limit=None)
    return api
