"""Renders planned clips: one function per clip kind turns a `ClipSpec` into mono audio, a
caption and its sources' licences; `render_clip` normalises loudness, writes the FLAC file
(16-bit, at the build's sample rate in Hz) and returns the clip's metadata row.

Worker processes build a `RenderContext` once (kits, loops, soundfont) and reuse it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from music.key import parse_key
from scripts.corpus import breaks, captions, chorales, mma
from scripts.corpus.audio import fade_edges, fit_length, normalise_loudness, write_flac
from scripts.corpus.fluid import ChannelSetup, FluidSynthRenderer
from scripts.corpus.licenses import (
    BACH_CHORALES,
    FLUID_R3_GM,
    GENERATED_MATERIAL,
    MMA_GROOVES,
    SONIC_PI_SAMPLES,
    SourceLicense,
    combine_licenses,
)
from scripts.corpus.parts import (
    ARPEGGIO_DIRECTIONS,
    DRUM_CHANNEL,
    GM_DRUM_KITS,
    GM_PROGRAM_NAMES,
    arpeggio_part,
    bass_part,
    chord_part,
    gm_drum_part,
    melody_part,
    to_timed_notes,
)
from scripts.corpus.patterns import generate_pattern
from scripts.corpus.plan import ClipSpec, SourceCatalog, discover_sources
from scripts.corpus.sequencer import instruments_played, render_drum_loop
from scripts.corpus.styles import STYLES
from scripts.corpus.theory import progression_chords

PART_HUMANISE_SECONDS = 0.004


@dataclass(frozen=True)
class RenderConfig:
    """Build-wide settings every worker needs."""

    out_dir: str
    sample_rate: int
    include_share_alike: bool


@dataclass
class RenderedClip:
    """A rendered clip before normalisation, with what its metadata needs."""

    audio: np.ndarray
    text: str
    instruments: list[str]
    source: str
    sources: list[SourceLicense]
    key: str | None = None
    extra: dict = field(default_factory=dict)


class RenderContext:
    """Per-process state: cleared sources by id and the soundfont renderer."""

    def __init__(self, config: RenderConfig, catalog: SourceCatalog | None = None):
        self.config = config
        self.catalog = catalog or discover_sources(config.include_share_alike)
        self.kits = {kit.kit_id: kit for kit in self.catalog.kits}
        self.loops = {loop.file_stem: loop for loop in self.catalog.loops}
        self.grooves = {groove.name: groove for groove in self.catalog.grooves}
        self._fluid: FluidSynthRenderer | None = None

    @property
    def fluid(self) -> FluidSynthRenderer:
        """The soundfont renderer (created on first use)."""
        if self._fluid is None:
            if self.catalog.soundfont is None:
                raise RuntimeError("FluidR3_GM soundfont missing: apt-get install "
                                   "fluid-soundfont-gm")
            self._fluid = FluidSynthRenderer(self.catalog.soundfont, self.config.sample_rate)
        return self._fluid


def _total_beats(spec: ClipSpec) -> float:
    return spec.seconds_total * spec.bpm / 60.0 + 1.0


def program_name(program: int) -> str:
    """Caption name of a GM program."""
    return GM_PROGRAM_NAMES.get(program, f"GM program {program}")


def render_kit_loop(spec: ClipSpec, context: RenderContext,
                    rng: np.random.Generator) -> RenderedClip:
    """A genre pattern sequenced on a Hydrogen or Sonic Pi kit."""
    kit = context.kits[spec.params["kit_id"]]
    pattern = generate_pattern(spec.genre, spec.params["pattern_seed"])
    audio, instruments = render_drum_loop(pattern, kit, spec.bpm, spec.seconds_total,
                                          context.config.sample_rate, rng,
                                          spec.params.get("tuning_factor", 1.0))
    text = captions.drum_loop_caption(spec.genre, spec.bpm, kit.description, instruments, rng)
    return RenderedClip(audio, text, instruments, kit.kit_id, [kit.license, GENERATED_MATERIAL],
                        extra={"kit": kit.kit_id,
                               "pattern_seed": str(spec.params["pattern_seed"])})


def render_gm_drum_loop(spec: ClipSpec, context: RenderContext,
                        rng: np.random.Generator) -> RenderedClip:
    """A genre pattern played on a FluidR3_GM drum kit (channel 10)."""
    pattern = generate_pattern(spec.genre, spec.params["pattern_seed"])
    events = gm_drum_part(pattern, _total_beats(spec))
    notes = to_timed_notes(events, spec.bpm, pattern.swing, pattern.swing_unit_beats,
                           pattern.humanise_seconds, rng)
    preset = spec.params["gm_kit"]
    channels = {DRUM_CHANNEL: ChannelSetup(preset, 128, 115, int(rng.integers(10, 50)))}
    audio = context.fluid.render(notes, channels, spec.seconds_total)
    instruments = instruments_played(pattern.roles())
    kit_description = GM_DRUM_KITS[preset][0]
    text = captions.drum_loop_caption(spec.genre, spec.bpm, kit_description, instruments, rng)
    return RenderedClip(audio, text, instruments, "fluid-soundfont-gm",
                        [FLUID_R3_GM, GENERATED_MATERIAL],
                        extra={"kit": f"FluidR3_GM:{kit_description}",
                               "pattern_seed": str(spec.params["pattern_seed"])})


def render_break_clip(spec: ClipSpec, context: RenderContext,
                      rng: np.random.Generator) -> RenderedClip:
    """A Sonic Pi loop as is, re-pitched or chopped."""
    loop = context.loops[spec.params["file_stem"]]
    speed = spec.params["speed_factor"]
    audio, _ = breaks.render_break(loop, speed, spec.params["chop"], spec.seconds_total,
                                   context.config.sample_rate, rng)
    if spec.params["chop"]:
        edit = "chopped and re-sequenced"
    elif speed > 1.02:
        edit = "sped up"
    elif speed < 0.98:
        edit = "slowed down"
    else:
        edit = ""
    text = captions.break_caption(loop.description, spec.genre, spec.bpm, edit, rng)
    return RenderedClip(audio, text, list(loop.instruments), f"sonic-pi:{loop.file_stem}",
                        [SONIC_PI_SAMPLES], extra={"loop_file": f"{loop.file_stem}.flac"})


def _lead_center_pitch(program: int) -> int:
    """Comfortable middle pitch of a lead instrument (MIDI note)."""
    if program in (57, 58, 66, 67, 70, 42, 32, 33):
        return 55
    if program in (64, 65, 56, 59, 60, 71, 26, 27, 28, 29, 30, 4, 0):
        return 67
    return 74


def render_part(spec: ClipSpec, context: RenderContext,
                rng: np.random.Generator) -> RenderedClip:
    """Chords, an arpeggio, a melody over chords, or a bass line on GM instruments."""
    params = spec.params
    key = parse_key(params["key"])
    chords = progression_chords(key, tuple(params["degrees"]), params["sevenths"])
    beats_per_chord = params["beats_per_chord"]
    total_beats = _total_beats(spec)
    piece_rng = np.random.default_rng(params["piece_seed"])
    program = params["program"]
    part = params["part"]
    is_guitar = 24 <= program <= 31
    channels = {0: ChannelSetup(program, 0, 105, int(rng.integers(25, 70)),
                                int(rng.integers(0, 30)))}
    backing = ""
    if part == "chords":
        events = chord_part(chords, beats_per_chord, total_beats, params["rhythm"], 60, 0, rng,
                            strum_beats=0.03 if is_guitar else 0.0)
        instruments = [program_name(program)]
    elif part == "arpeggio":
        note_beats = 0.25 if spec.bpm < 100 and rng.random() < 0.6 else 0.5
        events = arpeggio_part(chords, beats_per_chord, total_beats, note_beats,
                               str(rng.choice(ARPEGGIO_DIRECTIONS)), int(rng.integers(1, 3)),
                               66, 0, rng)
        instruments = [program_name(program)]
    elif part == "melody":
        backing_program = params["backing_program"]
        events = melody_part(key, chords, beats_per_chord, total_beats, 0, piece_rng,
                             _lead_center_pitch(program))
        events += chord_part(chords, beats_per_chord, total_beats, params["rhythm"], 57, 1, rng)
        channels[1] = ChannelSetup(backing_program, 0, 62, 60)
        backing = f"{program_name(backing_program)} chords"
        instruments = [program_name(program), program_name(backing_program)]
    else:
        events = bass_part(chords, beats_per_chord, total_beats, params["bass_style"], 0, rng)
        instruments = [program_name(program)]
    notes = to_timed_notes(events, spec.bpm, params["swing"], params["swing_unit_beats"],
                           PART_HUMANISE_SECONDS, rng)
    audio = context.fluid.render(notes, channels, spec.seconds_total)
    chord_names = [chord.name for chord in chords]
    text = captions.part_caption(part, spec.genre, spec.bpm, key.flat_name, program_name(program),
                                 chord_names, rng, backing=backing)
    return RenderedClip(audio, text, instruments, "fluid-soundfont-gm",
                        [FLUID_R3_GM, GENERATED_MATERIAL], key=key.flat_name,
                        extra={"chords": chord_names, "part": part,
                               "piece": f"midi:{params['piece_seed']}"})


def render_band(spec: ClipSpec, context: RenderContext,
                rng: np.random.Generator) -> RenderedClip:
    """Drums, bass and chords (and a lead half of the time) on GM instruments."""
    params = spec.params
    style = STYLES[params["style"]]
    key = parse_key(params["key"])
    chords = progression_chords(key, tuple(params["degrees"]), params["sevenths"])
    beats_per_chord = params["beats_per_chord"]
    total_beats = _total_beats(spec)
    pattern = generate_pattern(style.drum_genre, params["pattern_seed"])
    events = gm_drum_part(pattern, total_beats)
    events += bass_part(chords, beats_per_chord, total_beats, params["bass_style"], 1, rng)
    events += chord_part(chords, beats_per_chord, total_beats, params["rhythm"], 60, 2, rng,
                         strum_beats=0.03 if 24 <= params["chord_program"] <= 31 else 0.0)
    channels = {
        DRUM_CHANNEL: ChannelSetup(params["gm_kit"], 128, 110, 30),
        1: ChannelSetup(params["bass_program"], 0, 108, 10),
        2: ChannelSetup(params["chord_program"], 0, 78, 50),
    }
    instruments = ["drums", program_name(params["bass_program"]),
                   program_name(params["chord_program"])]
    if params["lead_program"] is not None:
        piece_rng = np.random.default_rng(params["piece_seed"])
        events += melody_part(key, chords, beats_per_chord, total_beats, 3, piece_rng,
                              _lead_center_pitch(params["lead_program"]))
        channels[3] = ChannelSetup(params["lead_program"], 0, 95, 45)
        instruments.append(program_name(params["lead_program"]))
    notes = to_timed_notes(events, spec.bpm, pattern.swing, pattern.swing_unit_beats,
                           pattern.humanise_seconds, rng)
    audio = context.fluid.render(notes, channels, spec.seconds_total)
    text = captions.band_caption(spec.genre, spec.bpm, key.flat_name, instruments, rng)
    return RenderedClip(audio, text, instruments, "fluid-soundfont-gm",
                        [FLUID_R3_GM, GENERATED_MATERIAL], key=key.flat_name,
                        extra={"chords": [chord.name for chord in chords],
                               "pattern_seed": str(params["pattern_seed"]),
                               "piece": f"midi:{params['piece_seed']}"})


def render_chorale_clip(spec: ClipSpec, context: RenderContext,
                        rng: np.random.Generator) -> RenderedClip:
    """An excerpt of a Bach chorale on a GM ensemble, transposed."""
    params = spec.params
    chorale = chorales.load_chorale(params["path"])
    if chorale is None:
        raise ValueError(f"{params['path']} has fewer than two voices")
    programs = chorales.ENSEMBLES[params["ensemble"]]
    length_beats = _total_beats(spec)
    start = chorales.choose_excerpt_start(chorale, length_beats, rng)
    events = chorales.excerpt_events(chorale, programs, start, length_beats,
                                     params["transpose"])
    notes = to_timed_notes(events, spec.bpm, 0.5, 0.25, 0.003, rng)
    channels = {voice: ChannelSetup(program, 0, 100, 60)
                for voice, program in enumerate(programs[: len(chorale.voices)])}
    audio = context.fluid.render(notes, channels, spec.seconds_total)
    # The clip's key is the excerpt's (what it sounds); the whole chorale's key is kept as piece_key.
    key = chorales.excerpt_key(chorale, start, chorales.heard_beats(spec.seconds_total, spec.bpm),
                               params["transpose"]).flat_name
    instruments = list(dict.fromkeys(program_name(p) for p in programs))
    text = captions.chorale_caption(params["title"], params["ensemble"], instruments, key,
                                    spec.bpm, rng)
    return RenderedClip(audio, text, instruments, f"music21:{params['title']}",
                        [BACH_CHORALES, FLUID_R3_GM], key=key,
                        extra={"piece": params["title"], "ensemble": params["ensemble"],
                               "piece_key": chorale.key.transposed(params["transpose"]).flat_name})


def render_mma_clip(spec: ClipSpec, context: RenderContext,
                    rng: np.random.Generator) -> RenderedClip:
    """An MMA groove over a generated chord chart (share-alike builds only)."""
    groove = context.grooves[spec.params["groove"]]
    audio, instruments = mma.render_groove(groove, spec.bpm, spec.params["chords"],
                                           spec.seconds_total, context.fluid)
    text = captions.band_caption(spec.genre, spec.bpm, spec.key, instruments, rng)
    return RenderedClip(audio, text, instruments, f"mma:{groove.name}",
                        [MMA_GROOVES, FLUID_R3_GM], key=spec.key,
                        extra={"chords": spec.params["chords"], "piece": f"mma:{groove.stem}"})


RENDERERS = {
    "kit_loop": render_kit_loop,
    "gm_drum_loop": render_gm_drum_loop,
    "break": render_break_clip,
    "part": render_part,
    "band": render_band,
    "chorale": render_chorale_clip,
    "mma": render_mma_clip,
}


def clip_relative_path(spec: ClipSpec) -> str:
    """Path of the clip's file relative to its split folder (audiofolder `file_name`)."""
    return f"{spec.subset}/{spec.clip_id}.flac"


def attribution_text(sources: list[SourceLicense]) -> str:
    """Credit line for a clip's sources (generated material needs none)."""
    return "; ".join(f"{lic.title}, {lic.author} ({lic.license_id})" for lic in sources
                     if lic.source_id != GENERATED_MATERIAL.source_id)


def render_clip(spec: ClipSpec, context: RenderContext) -> dict:
    """Render `spec`, write `<out>/<split>/<subset>/<clip_id>.flac`, return its metadata row."""
    rng = np.random.default_rng(spec.seed)
    clip = RENDERERS[spec.kind](spec, context, rng)
    sample_rate = context.config.sample_rate
    audio = fit_length(clip.audio, round(spec.seconds_total * sample_rate))
    audio = fade_edges(normalise_loudness(audio), sample_rate)
    relative_path = clip_relative_path(spec)
    write_flac(Path(context.config.out_dir) / spec.split / relative_path, audio, sample_rate)
    license_expression, license_class = combine_licenses(clip.sources)
    row = {
        "file_name": relative_path,
        "text": clip.text,
        "bpm": spec.bpm,
        "key": clip.key if clip.key is not None else spec.key,
        "genre": spec.genre,
        "instruments": clip.instruments,
        "source": clip.source,
        "sources": [lic.source_id for lic in clip.sources],
        "license": license_expression,
        "license_class": license_class,
        "attribution": attribution_text(clip.sources),
        "seconds_total": spec.seconds_total,
        "split": spec.split,
        "subset": spec.subset,
        "kind": spec.kind,
        "group": spec.group,
        "clip_id": spec.clip_id,
        "seed": spec.seed,
    }
    row.update(clip.extra)
    return row


_WORKER_CONTEXT: RenderContext | None = None


def init_worker(config: RenderConfig) -> None:
    """Pool initialiser: build this process's render context once."""
    global _WORKER_CONTEXT
    _WORKER_CONTEXT = RenderContext(config)


def render_batch(spec_dicts: list[dict]) -> list[tuple[str, dict | None, str | None]]:
    """Render a batch in a worker: (clip_id, row or None, error or None) per spec."""
    assert _WORKER_CONTEXT is not None, "init_worker must run first"
    results = []
    for spec_dict in spec_dicts:
        spec = ClipSpec(**spec_dict)
        try:
            results.append((spec.clip_id, render_clip(spec, _WORKER_CONTEXT), None))
        except Exception as error:  # noqa: BLE001 - reported per clip, build goes on
            results.append((spec.clip_id, None, f"{type(error).__name__}: {error}"))
    return results
