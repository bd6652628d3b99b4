"""The text-to-audio workflow: clips of exactly the asked length from a prompt (tempo-normalised models
stretched to the asked tempo), each judged by the quality gate (made again with a new seed when flagged,
`studio.take_gate`), shifted to the asked key and written in the asked export format; one zip of the batch.
Seconds, Hz and BPM throughout.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from models.generator import AudioGenerator
from music.export import DEFAULT_FORMAT, ExportSettings
from studio.budget import OutputRequest, audio_file_bytes, export_options
from studio.checks import MAX_SEED, pick_seed
from studio.generation import (
    ModelChoice,
    Workspace,
    apply_key,
    bpm_from_prompt,
    choose_scheduler,
    generate,
    picture,
    tempo_note,
)
from studio.progress import Feedback, Notes, StepReporter, start_job
from studio.requests import TextToAudioRequest
from studio.results import Output, Result, plural, status_text
from studio.take_gate import GateRun, failure_warning, gate_line, judged_audio, regenerated_summary


@dataclass
class TextPlan:
    """What every output of one request shares once the model is loaded: the model, the checked request,
    the steps, the sampler asked of the model (None: its own) and its name, and the tempo generated at in
    BPM (None: the model's own)."""

    choice: ModelChoice
    model: AudioGenerator
    request: TextToAudioRequest
    steps: int
    scheduler: str | None
    scheduler_used: str
    tempo: float | None


def plan_text(workspace: Workspace, request: TextToAudioRequest, choice: ModelChoice, model: AudioGenerator,
              notes: Notes) -> TextPlan:
    """Check a text-to-audio request against the loaded model: text, steps, duration and timing limits."""
    capabilities = model.capabilities
    if not capabilities.text:
        raise ValueError(f"{choice.name} does not take text. Pick a text model here, or make loops from "
                         "it in the Loops tab.")
    steps = workspace.check_steps(request.steps, capabilities)
    if request.seconds_total > capabilities.max_duration_s + 1e-9:
        raise ValueError(f"Duration must be at most {capabilities.max_duration_s:.1f} s for {choice.name}, "
                         f"got {request.seconds_total:g} s.")
    limit = capabilities.max_piece_s
    if limit is not None and request.seconds_start + request.seconds_total > limit + 1e-9:
        raise ValueError(f"Start offset + duration must be at most {limit:.1f} s for {choice.name}, got "
                         f"{request.seconds_start + request.seconds_total:g} s.")
    scheduler, scheduler_used = choose_scheduler(capabilities, request.scheduler, notes)
    tempo = (request.bpm or bpm_from_prompt(request.prompt)) if capabilities.reference_bpm else None
    if request.bpm and not capabilities.reference_bpm:
        notes.warn(f"{choice.name} has no reference tempo to stretch from, so BPM is not applied here; "
                   "the Loops tab estimates its tempo and stretches whole bars to the BPM.")
    return TextPlan(choice, model, request, steps, scheduler, scheduler_used, tempo)


def text_file_bytes(plan: TextPlan, seconds: float) -> int:
    """Upper bound of the bytes one output of `seconds` seconds writes at the request's export settings
    (plain: a WAV at the model's rate and channels, float when peaks pass full scale)."""
    capabilities, export = plan.model.capabilities, plan.request.export
    plain = export == ExportSettings(None, None, DEFAULT_FORMAT)
    return audio_file_bytes(seconds, export.sample_rate or capabilities.sample_rate,
                            export.channels or capabilities.channels, 4 if plain else export.max_bytes_per_sample)


def text_files(plan: TextPlan, max_bytes: int) -> OutputRequest:
    """The files of a text-to-audio request, with the duration and export settings that would fit `max_bytes`."""
    request = plan.request
    per_second = max(1, text_file_bytes(plan, 1.0) - text_file_bytes(plan, 0.0))
    longest = math.floor((max_bytes / (2 * request.num_outputs) - text_file_bytes(plan, 0.0)) / per_second * 10) / 10
    options = [f"Duration to {longest:g} s"] if 0 < longest < request.seconds_total else []
    options += export_options(request.export, plan.model.capabilities.sample_rate)
    return OutputRequest(request.num_outputs, text_file_bytes(plan, request.seconds_total), "Outputs", tuple(options))


def text_output(workspace: Workspace, plan: TextPlan, index: int, seed: int, reporter: StepReporter,
                notes: Notes, gate: GateRun) -> Output:
    """Output `index` (0-based) with seed `seed` (or a regeneration's, when the quality gate flags the take):
    generated, checked, trimmed, keyed and written."""
    request, choice, tempo = plan.request, plan.choice, plan.tempo
    export, what = request.export, f"Output {index + 1}"
    generated, record = gate.take(
        lambda take_seed, guidance: generate(plan.model, take_seed, plan.steps, prompt=request.prompt,
                                             negative_prompt=request.negative_prompt,
                                             seconds_total=request.seconds_total, seconds_start=request.seconds_start,
                                             guidance_scale=guidance, progress_callback=reporter.for_call(index),
                                             bpm=tempo, scheduler=plan.scheduler),
        lambda take: judged_audio(take, request.seconds_total),
        seed, reporter, index, what, guidance=request.guidance_scale)
    seed, guidance = record.served_seed, record.served_guidance
    if not record.passed:
        notes.warn(failure_warning(what, record))
    samples = round(request.seconds_total * generated.sample_rate)
    audio = generated.audios[0][:, :samples]  # the pipelines trim; this guards the promise
    audio, key_line, key_facts = apply_key(audio, generated.sample_rate, request.key, notes, what,
                                             request.key_named_in_prompt)
    reporter.check()  # a request cancelled during the last step writes nothing
    params = dict(model=choice.short_name, model_source=choice.name, prompt=request.prompt,
                  negative_prompt=request.negative_prompt or None, seed=seed, steps=plan.steps,
                  scheduler=plan.scheduler_used, seconds_total=request.seconds_total,
                  seconds_start=request.seconds_start, guidance_scale=guidance,
                  sample_rate=generated.sample_rate, bpm=tempo, **key_facts)
    path = workspace.store.write_audio("text", audio, generated.sample_rate, params, settings=export)
    seconds_out = audio.shape[-1] / generated.sample_rate
    title = f"Output {index + 1} · seed {seed} · {seconds_out:.2f} s" + (f" · {tempo:g} BPM" if tempo else "")
    return Output(path, picture(generated, audio), seed, seconds_out, title, bpm=tempo, key_info=key_line,
                  settings={**params, "file": path.name, "export": export.file_format}, take=record)


def text_to_audio(workspace: Workspace, request: TextToAudioRequest, feedback: Feedback | None = None) -> Result:
    """`num_outputs` clips of exactly `seconds_total` seconds from a prompt (output i: seed + i); see
    `TextToAudioRequest`.

    Raises:
        ValueError: naming the field and its range, or what the model cannot do.
    """
    # 1. Check inputs
    request = request.check(workspace.limits)
    seed = pick_seed(request.seed, request.randomize_seed)
    feedback, notes, reporter = start_job(feedback, request.num_outputs, "Output")
    # 2. Generate
    with workspace.registry.use(request.model) as (choice, model):
        plan = plan_text(workspace, request, choice, model, notes)
        planned = workspace.plan(reporter, choice, model.capabilities, request.num_outputs, request.seconds_total,
                                 plan.steps, "Outputs", "Duration")
        workspace.check_output(text_files(plan, workspace.limits.max_output_bytes))
        gate = workspace.gate_run(choice, request.prompt, planned)
        outputs = [text_output(workspace, plan, index, (seed + index) % (MAX_SEED + 1), reporter, notes, gate)
                   for index in range(request.num_outputs)]
        workspace.finish(reporter, choice)
    lines = [(f"**Seed {seed}** (output i uses seed {seed} + i) · {plural(plan.steps, 'step')} · "
              f"guidance {request.guidance_scale:g} · {request.seconds_total:g} s from {request.seconds_start:g} s · "
              f"`{choice.name}`")]
    tempo_line = tempo_note(model.capabilities, plan.tempo)
    lines += [tempo_line] if tempo_line else []
    records = [output.take for output in outputs]
    gate_status = gate_line(records, gate.gate, "Output")
    lines += [gate_status] if gate_status else []
    zip_path = workspace.store.write_batch("text", outputs)
    return Result(outputs, seed, status_text(lines, notes), list(notes), zip_path=zip_path,
                  regenerated=regenerated_summary(records))
