"""The audio-to-audio workflow: vary, inpaint, outpaint or continue an uploaded or recorded clip, and
hand it back at the upload's own rate, channels and loudness with its kept samples bit for bit.
Seconds and Hz throughout.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from models.generator import Capabilities
from music.splice import splice_into_input
from studio.checks import Upload, pick_seed, read_upload
from studio.generation import (
    ModelChoice,
    Workspace,
    check_broken,
    check_prompt_use,
    choose_scheduler,
    generate,
)
from studio.pictures import spectrogram_of
from studio.progress import Feedback, Notes, start_job
from studio.requests import AudioToAudioRequest
from studio.results import Output, Result, plural, status_text
from studio.take_gate import take_kind


def upload_subtype(path: str | Path) -> str:
    """The sample format to write an audio-to-audio result in: float for float uploads, 24-bit for 24/32-bit
    ones, else 16-bit (either way the kept samples of the upload come back bit for bit)."""
    import soundfile as sf

    try:
        subtype = sf.info(str(path)).subtype
    except (sf.SoundFileError, RuntimeError):  # formats libsndfile cannot read (decoded by librosa)
        return "PCM_16"
    if subtype in ("FLOAT", "DOUBLE"):
        return "FLOAT"  # float uploads may pass full scale; PCM would clip their kept samples
    return "PCM_24" if subtype in ("PCM_24", "PCM_32") else "PCM_16"


@dataclass
class Edit:
    """A mode as what the model does: regions of the input kept (seconds) and seconds added."""

    keep_regions: list[tuple[float, float]] | None
    extend_in_s: float | None
    region_end: float


def check_mode_offered(mode: str, choice: ModelChoice, capabilities: Capabilities) -> None:
    """`ValueError` when the model does not offer `mode` (e.g. Stable Audio Open: variations only)."""
    offered = {"variation": capabilities.audio_to_audio, "inpaint region": capabilities.inpaint,
               "outpaint around region": capabilities.inpaint, "continue": capabilities.continuation}
    if offered[mode]:
        return
    if capabilities.audio_to_audio and not capabilities.inpaint and not capabilities.continuation:
        raise ValueError(f"{choice.name} does variations only here; '{mode}' needs one of the mel models.")
    raise ValueError(f"{choice.name} cannot do '{mode}'; pick another mode or model.")


def mode_as_edit(request: AudioToAudioRequest, choice: ModelChoice, capabilities: Capabilities, seconds_in: float,
                 notes: Notes) -> Edit:
    """The request's mode as regions kept / seconds added, for a `seconds_in`-second input; `ValueError`
    for a region or continuation the clip or the model cannot take."""
    mode, region_start, region_end = request.mode, request.region_start, request.region_end
    check_mode_offered(mode, choice, capabilities)
    if mode == "continue":
        longest = capabilities.max_extended_s
        if seconds_in + request.extend_seconds > longest:
            raise ValueError(f"Clip + continuation would be {seconds_in + request.extend_seconds:.1f} s; "
                             f"{choice.name} makes at most {longest:g} s.")
        return Edit(None, request.extend_seconds, region_end)
    if mode == "variation":
        return Edit(None, None, region_end)
    if region_start >= seconds_in:
        raise ValueError(f"Region start ({region_start:g} s) lies beyond the end of the {seconds_in:.2f} s clip.")
    if region_end > seconds_in + 1e-6:
        notes.warn(f"Region end {region_end:g} s is past the clip's end; using {seconds_in:.2f} s.")
    region_end = min(region_end, seconds_in)
    if mode == "outpaint around region":
        if region_start <= 0.0 and region_end >= seconds_in - 1e-6:
            raise ValueError(f"The region {region_start:g}–{region_end:g} s keeps the whole {seconds_in:.2f} s "
                             "clip, so there is nothing to regenerate; make it shorter than the clip.")
        return Edit([(region_start, region_end)], None, region_end)
    keep_regions = [(a, b) for a, b in [(0.0, region_start), (region_end, seconds_in)] if b > a]
    if not keep_regions:
        raise ValueError("The region covers the whole clip; use 'variation' with strength 1 instead.")
    return Edit(keep_regions, None, region_end)


def read_input(workspace: Workspace, request: AudioToAudioRequest, capabilities: Capabilities,
               feedback: Feedback) -> Upload:
    """The upload, read at the model's rate and checked against the longest input."""
    max_input = min(workspace.limits.max_input_seconds, capabilities.max_input_s)
    upload = read_upload(request.audio_path, capabilities.sample_rate, max_input, capabilities.channels)
    if upload.notes:
        feedback.info("Input " + "; ".join(upload.notes) + ".")
    return upload


def status_line(request: AudioToAudioRequest, edit: Edit, seed: int, steps: int, name: str, seconds_in: float,
                upload: Upload) -> str:
    """The status line: seed, what the mode did, steps, model and input."""
    mode, strength, start, end = request.mode, request.strength, request.region_start, edit.region_end
    detail = {"variation": f"strength {strength:g}", "continue": f"+{edit.extend_in_s or 0:g} s",
              "inpaint region": f"regenerated {start:g}–{end:g} s at strength {strength:g}",
              "outpaint around region": f"kept {start:g}–{end:g} s, rest at strength {strength:g}"}
    return (f"**Seed {seed}** · {mode}: {detail[mode]} · {plural(steps, 'step')} · `{name}` · input "
            f"{seconds_in:.2f} s" + (f" ({'; '.join(upload.notes)})" if upload.notes else ""))


def audio_to_audio(workspace: Workspace, request: AudioToAudioRequest, feedback: Feedback | None = None) -> Result:
    """Vary, in/outpaint or continue an uploaded or recorded clip (see `AudioToAudioRequest`).

    Raises:
        ValueError: naming the field and its range, or what the model or the clip cannot do.
    """
    # 1. Check inputs that need no model
    request = request.check(workspace.limits)
    seed = pick_seed(request.seed, request.randomize_seed)
    feedback, notes, reporter = start_job(feedback, 1, "Clip")
    with workspace.registry.use(request.model) as (choice, model):
        capabilities = model.capabilities
        # 2. Read the upload at the model's rate
        steps = workspace.check_steps(request.steps, capabilities)
        upload = read_input(workspace, request, capabilities, feedback)
        seconds_in = upload.mono.shape[-1] / capabilities.sample_rate
        # 3. The mode as regions kept / seconds added
        edit = mode_as_edit(request, choice, capabilities, seconds_in, notes)
        longest = capabilities.max_duration_s
        if capabilities.trims_input and seconds_in > longest:
            notes.warn(f"{choice.name} takes at most {longest:.1f} s; the input is cut there.")
        prompt = check_prompt_use(choice, capabilities, request.prompt, notes)
        scheduler, scheduler_used = choose_scheduler(capabilities, request.scheduler, notes)
        # 4. Generate
        audio_in, rate_in = upload.for_model(capabilities.channels)
        seconds_out = min(seconds_in, longest) if capabilities.trims_input else None
        workspace.plan(reporter, choice, capabilities, 1, seconds_in + (edit.extend_in_s or 0.0), steps, "Outputs",
                       "Input length")
        generated = generate(
            model, seed, steps, prompt=prompt, negative_prompt=request.negative_prompt, seconds_total=seconds_out,
            guidance_scale=request.guidance_scale if capabilities.text else None, audio=audio_in,
            audio_sampling_rate=rate_in, strength=request.strength, keep_regions_in_s=edit.keep_regions,
            extend_in_s=edit.extend_in_s, progress_callback=reporter.for_call(0), scheduler=scheduler,
        )
        # 5. Back to the input's rate and channels, its loudness, and its own samples where kept
        kept = edit.keep_regions if edit.keep_regions else [(0.0, seconds_in)] if request.mode == "continue" else None
        reporter.check()  # a request cancelled during the last step writes nothing
        audio = splice_into_input(generated.audios[0], generated.sample_rate, upload.audio, upload.sample_rate, kept)
        rate = upload.sample_rate
        params = dict(model=choice.short_name, model_source=choice.name, mode=request.mode, prompt=prompt or None,
                      negative_prompt=request.negative_prompt or None, seed=seed, steps=steps,
                      scheduler=scheduler_used, strength=request.strength, keep_regions_in_s=edit.keep_regions,
                      extend_in_s=edit.extend_in_s, input_file=Path(str(request.audio_path)).name,
                      input_seconds=round(seconds_in, 3), sample_rate=rate, channels=audio.shape[0],
                      model_sample_rate=generated.sample_rate)
        path = workspace.store.write_audio(request.mode.split()[0], audio, rate, params,
                                           subtype=upload_subtype(request.audio_path))
        # Judged and warned about, never regenerated: the input (the user's own clip) sets what it sounds like.
        gate = workspace.gate_for(choice)
        check_broken(notes, "The output", audio, rate, gate, take_kind(gate, prompt))
        workspace.finish(reporter, choice)
    seconds = audio.shape[-1] / rate
    # Both pictures drawn the same way, so input and output can be compared bin for bin.
    output = Output(path, spectrogram_of(audio, rate), seed, seconds,
                    f"{request.mode} · seed {seed} · {seconds:.2f} s · {rate} Hz, {plural(audio.shape[0], 'channel')}",
                    settings={**params, "file": path.name})
    lines = [status_line(request, edit, seed, steps, choice.name, seconds_in, upload)]
    return Result([output], seed, status_text(lines, notes), list(notes),
                  input_spectrogram=spectrogram_of(upload.audio, upload.sample_rate))
