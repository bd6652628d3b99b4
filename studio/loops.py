"""The loops workflow: clips from a model, each judged by the quality gate (made again with a new seed
when flagged, `studio.take_gate`), shifted to the asked key, cut into a seamless loop at the tempo (given,
named in the prompt, or estimated), tiled, measured for loop quality and written with its loop points;
one zip of the batch. Seconds, Hz and BPM throughout.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.generator import AudioGenerator
from music.export import ExportSettings
from music.key import Key
from music.loop_quality import loop_quality
from music.loops import bar_length_in_samples, loop_at_tempo, loop_from_downbeat, make_loop
from music.tempo import BPM_RANGE
from studio.budget import OutputRequest, audio_file_bytes, export_options
from studio.checks import MAX_SEED, pick_seed
from studio.generation import (
    ModelChoice,
    Workspace,
    apply_key,
    bpm_from_prompt,
    check_prompt_use,
    choose_scheduler,
    default_seconds,
    generate,
    picture,
    tempo_note,
)
from studio.progress import Feedback, Notes, StepReporter, start_job
from studio.requests import LoopsRequest, check_key, takes_key_from_prompt
from studio.results import Output, Result, plural, status_text
from studio.take_gate import GateRun, failure_warning, gate_line, judged_audio, regenerated_summary


@dataclass
class LoopPlan:
    """What every variation of one request shares, once the model is loaded.

    Attributes:
        choice, model: the model.
        steps: denoising steps per window; scheduler: the sampler asked of the model (None: its own);
            scheduler_used: the sampler's name.
        prompt: the prompt used ("" for unconditional models).
        asked: the tempo asked for (the request's, else the prompt's), in BPM, or None.
        tempo: the tempo generated at (asked, else the model's reference), in BPM, or None.
        seconds: each clip's length in seconds.
        key: the target key; key_from_prompt: whether it is the one the prompt names; export: how loop files
            are written; repeats: loop tiling.
    """

    choice: ModelChoice
    model: AudioGenerator
    steps: int
    scheduler: str | None
    scheduler_used: str
    prompt: str
    asked: float | None
    tempo: float | None
    seconds: float
    key: Key | None
    key_from_prompt: bool
    export: ExportSettings
    repeats: int


def plan_loops(workspace: Workspace, request: LoopsRequest, choice: ModelChoice, model: AudioGenerator,
               notes: Notes) -> LoopPlan:
    """Check a loops request against the loaded model: steps, prompt, and a clip length of at least one bar
    (for tempo-normalised models, from two bars on, cut down to its whole bars: the loop is made of them,
    `whole_bars_seconds`)."""
    capabilities = model.capabilities
    steps = workspace.check_steps(request.steps, capabilities)
    scheduler, scheduler_used = choose_scheduler(capabilities, request.scheduler, notes)
    prompt = check_prompt_use(choice, capabilities, request.prompt, notes)
    if capabilities.text and not prompt:
        raise ValueError(f"{choice.name} is a text model: write a prompt, e.g. 'funk drum loop, 100 BPM'.")
    asked = request.bpm or (bpm_from_prompt(prompt) if capabilities.text else None)
    # A tempo-normalised model makes bars at its reference tempo, stretched to the asked one: the
    # tempo is then known exactly, never estimated.
    tempo = asked or capabilities.reference_bpm
    bar_seconds = 240.0 / (tempo or 120.0)  # a loop needs one whole 4/4 bar
    if request.clip_seconds and request.clip_seconds < bar_seconds - 1e-6:
        raise ValueError(f"Clip length must be 0 (two bars) or at least one bar: {bar_seconds:.2f} s at "
                         f"{tempo or 120.0:g} BPM, got {request.clip_seconds:g} s.")
    seconds = request.clip_seconds or default_seconds(capabilities, tempo)
    if capabilities.reference_bpm:
        seconds = whole_bars_seconds(seconds, tempo, capabilities.sample_rate)
    key = check_key(request.target_key, prompt if capabilities.text else "")
    key_from_prompt = key is not None and takes_key_from_prompt(request.target_key)
    return LoopPlan(choice, model, steps, scheduler, scheduler_used, prompt, asked, tempo, seconds, key,
                    key_from_prompt, request.export, request.repeats)


def whole_bars_seconds(seconds: float, bpm: float, sample_rate: int) -> float:
    """The length in seconds, exact to the sample, of the whole 4/4 bars at `bpm` that a clip of `seconds`
    holds, when it holds two or more; `seconds` itself otherwise.

    A tempo-normalised model's loop is every whole bar of its clip from the downbeat (`cut_loop`), so the
    rest of a longer clip is thrown away: making only those bars saves its generation (a 4 s clip at 124 BPM
    is 4.23 s at the bundled models' 117.19 BPM, one frame more than their 4.096 s window, for a loop of two
    bars, 3.87 s, that fits in one). Under two bars the clip is one window (two bars at the reference tempo)
    either way, and a one-bar loop's seam fades in from the audio after its bar: it is kept. Bars are
    counted as `music.loops.loop_from_downbeat` counts them in the clip.
    """
    length = round(seconds * sample_rate)
    bars = 1
    while bar_length_in_samples(bars + 1, 4, bpm, sample_rate) <= length:
        bars += 1
    return bar_length_in_samples(bars, 4, bpm, sample_rate) / sample_rate if bars >= 2 else seconds


# A loop is at most this many bars (`music.loops.make_loop`'s `max_bars`), of 4 beats.
MOST_LOOP_BEATS = 8 * 4


def loop_file_bytes(plan: LoopPlan, repeats: int) -> int:
    """Upper bound of the bytes one variation writes: its clip (float WAV at the model's rate when peaks
    pass full scale) and its loop tiled `repeats` times at the export settings."""
    capabilities = plan.model.capabilities
    rate = capabilities.sample_rate
    clip = audio_file_bytes(plan.seconds, rate, capabilities.channels, 4)
    cycle = plan.seconds
    if plan.asked and not capabilities.reference_bpm:
        # Whole bars cut at the estimated tempo (at most BPM_RANGE's fastest) are stretched to the asked one.
        cycle = max(cycle, min(MOST_LOOP_BEATS * 60.0 / plan.asked, plan.seconds * BPM_RANGE[1] / plan.asked))
    export = plan.export
    loop = audio_file_bytes(cycle * repeats, export.sample_rate or rate, export.channels or 1,
                            export.max_bytes_per_sample)
    return clip + loop


def loop_output(plan: LoopPlan, variations: int, max_bytes: int) -> OutputRequest:
    """The files of a loops request, with the repeats and export settings that would fit `max_bytes`."""
    options = []
    fewer = [repeats for repeats in range(plan.repeats - 1, 0, -1)
             if 2 * variations * loop_file_bytes(plan, repeats) <= max_bytes]
    if fewer:
        options.append(f"Repeats to {fewer[0]}")
    options += [*export_options(plan.export, plan.model.capabilities.sample_rate), "Clip length"]
    return OutputRequest(variations, loop_file_bytes(plan, plan.repeats), "Variations", tuple(options),
                         files_per_clip=2)


def cut_loop(plan: LoopPlan, audio: np.ndarray, sample_rate: int, broken: list[str]):
    """The loop of one clip (`music.loops.Loop`), or `ValueError` saying why there is none."""
    if "silent" in broken:  # a tempo "found" in near-silence would be noise
        raise ValueError("the clip is near-silent")
    mono = audio.mean(axis=0)
    if plan.model.capabilities.reference_bpm:  # bars from sample 0 at a known tempo, by construction
        return loop_from_downbeat(mono, sample_rate, plan.tempo, repeats=plan.repeats)
    if plan.asked:  # tempo and downbeat estimated, whole bars stretched to the asked tempo
        return loop_at_tempo(mono, sample_rate, plan.asked, repeats=plan.repeats)
    return make_loop(mono, sample_rate, repeats=plan.repeats)


def write_loop(workspace: Workspace, plan: LoopPlan, output: Output, loop, params: dict, sample_rate: int) -> None:
    """Measure `loop`, write it with its loop points and fill `output`'s loop fields."""
    quality = loop_quality(loop)
    output.quality = quality.to_dict()
    loop_params = {**params, "repeats": plan.repeats, **{f"loop_{k}": v for k, v in output.quality.items()}}
    output.loop_path = workspace.store.write_loop(loop, loop_params, plan.export)
    output.bpm = loop.bpm
    source = "estimated" if loop.bpm_estimated else "given"
    output.loop_info = (f"**{loop.bpm:.1f} BPM** ({source}) · {loop.bars} bar(s) of "
                        f"{loop.beats_per_bar} · tiled ×{loop.repeats} = {loop.seconds_total:.2f} s  \n"
                        f"{quality.describe()}" + (f"  \n{loop.tempo_note}" if loop.tempo_note else ""))
    output.settings.update(loop_file=output.loop_path.name, bpm=round(loop.bpm, 3), bars=loop.bars,
                           beats_per_bar=loop.beats_per_bar, repeats=plan.repeats,
                           bpm_source=source, export=plan.export.file_format,
                           export_sample_rate=plan.export.sample_rate or sample_rate,
                           export_channels=plan.export.channels or 1, **output.quality)


def loop_variation(workspace: Workspace, plan: LoopPlan, index: int, seed: int, reporter: StepReporter,
                   notes: Notes, gate: GateRun) -> Output:
    """Variation `index` (0-based) with seed `seed` (or a regeneration's, when the quality gate flags the
    take): generated, keyed, written, and cut into a loop."""
    choice, what = plan.choice, f"Variation {index + 1}"
    generated, record = gate.take(
        lambda take_seed, _guidance: generate(plan.model, take_seed, plan.steps, prompt=plan.prompt,
                                              seconds_total=plan.seconds, progress_callback=reporter.for_call(index),
                                              bpm=plan.tempo, scheduler=plan.scheduler),
        judged_audio, seed, reporter, index, what)
    seed, broken = record.served_seed, record.reasons[-1]
    if broken:
        notes.warn(failure_warning(what, record))
    audio, key_line, key_facts = apply_key(generated.audios[0], generated.sample_rate, plan.key, notes, what,
                                             plan.key_from_prompt)
    reporter.check()  # a request cancelled during the last step writes nothing
    params = dict(model=choice.short_name, model_source=choice.name, prompt=plan.prompt or None,
                  seed=seed, steps=plan.steps, scheduler=plan.scheduler_used, seconds_total=plan.seconds,
                  variation=index + 1, sample_rate=generated.sample_rate, asked_bpm=plan.asked or None,
                  **key_facts)
    clip_path = workspace.store.write_audio("clip", audio, generated.sample_rate, params)
    seconds_out = audio.shape[-1] / generated.sample_rate
    output = Output(
        audio_path=clip_path, spectrogram=picture(generated, audio), seed=seed,
        seconds=seconds_out, title=f"{what} · seed {seed} · {seconds_out:.2f} s",
        key_info=key_line, settings={**params, "file": clip_path.name}, take=record,
    )
    try:
        loop = cut_loop(plan, audio, generated.sample_rate, broken)
    except ValueError as error:
        output.loop_info = f"No loop: {error}"
        notes.warn(f"{what}: no loop extracted ({error}); the raw clip is still here.")
    else:
        write_loop(workspace, plan, output, loop, params, generated.sample_rate)
    if key_line:
        output.loop_info = (output.loop_info + "  \n" + key_line).strip()
    return output


def make_loops(workspace: Workspace, request: LoopsRequest, feedback: Feedback | None = None) -> Result:
    """`variations` clips, each made into a seamless loop tiled `repeats` times (see `LoopsRequest`).

    Returns:
        One `Output` per variation: the raw clip, its spectrogram and, when a loop was found,
        the tiled loop WAV with loop points and its tempo. Variation i uses seed `seed + i`.
    Raises:
        ValueError: naming the field and its range, or what the model cannot do.
    """
    # 1. Check inputs
    request = request.check(workspace.limits)
    seed = pick_seed(request.seed, request.randomize_seed)
    feedback, notes, reporter = start_job(feedback, request.variations, "Variation")
    # 2. Generate, loop and write each variation
    with workspace.registry.use(request.model) as (choice, model):
        plan = plan_loops(workspace, request, choice, model, notes)
        planned = workspace.plan(reporter, choice, model.capabilities, request.variations, plan.seconds, plan.steps,
                                 "Variations", "Clip length")
        workspace.check_output(loop_output(plan, request.variations, workspace.limits.max_output_bytes))
        gate = workspace.gate_run(choice, plan.prompt, planned)
        outputs = [loop_variation(workspace, plan, index, (seed + index) % (MAX_SEED + 1), reporter, notes, gate)
                   for index in range(request.variations)]
        workspace.finish(reporter, choice)
    lines = [(f"**Seed {seed}** (variation i uses seed {seed} + i) · {plural(plan.steps, 'step')} · "
              f"{plan.scheduler_used} · `{choice.name}`")]
    tempo_line = tempo_note(model.capabilities, plan.asked)
    lines += [tempo_line] if tempo_line else []
    records = [output.take for output in outputs]
    gate_status = gate_line(records, gate.gate, "Variation")
    lines += [gate_status] if gate_status else []
    zip_path = workspace.store.write_batch("loops", outputs)
    return Result(outputs, seed, status_text(lines, notes), list(notes), zip_path=zip_path,
                  regenerated=regenerated_summary(records))
