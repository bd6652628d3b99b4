"""What to render: discovers the installed sources and plans every clip of the corpus as a
small JSON-able `ClipSpec` (kind, seed, tempo in BPM, key, length in seconds, split group),
deterministically from one seed.

Each family (kit loops, GM drum loops, breaks, parts, bands, chorales, MMA grooves) draws from
its own seeded stream, so changing one family's size leaves the others unchanged.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from music.key import all_keys
from scripts.corpus import breaks, chorales, drumkits, fluid, mma
from scripts.corpus.licenses import (
    SONIC_PI_SAMPLES,
    debian_cc0_files,
    is_allowed,
)
from scripts.corpus.parts import GM_DRUM_KITS
from scripts.corpus.patterns import GENRES
from scripts.corpus.splits import DEFAULT_SPLIT_FRACTIONS, assign_group_splits, stable_int
from scripts.corpus.styles import STYLES
from scripts.corpus.theory import PROGRESSIONS, progression_chords

SUBSETS = ("drums", "melodic", "band", "classical")
DEFAULT_SUBSET_SHARES = {"drums": 0.45, "melodic": 0.30, "band": 0.15, "classical": 0.10}
# Shares of the drum subset: sequenced kit loops, GM soundfont kits, sampled breaks.
DRUM_FAMILY_SHARES = {"kit_loop": 0.60, "gm_drum_loop": 0.25, "break": 0.15}
RENDERS_PER_PATTERN = 2
RENDERS_PER_PIECE = 2
CLIPS_PER_CHORALE = 3
PART_KINDS = ("chords", "arpeggio", "melody", "bass line")
SONIC_PI_COPYRIGHT = Path("/usr/share/doc/sonic-pi-samples/copyright")
SEED_RANGE = 2**62
# Without drums, a part needs a pulse of its own for its tempo to be heard: sustained,
# syncopated or whole-note parts are kept for bands (drums carry the beat) but avoided in
# solo parts when the style has another choice (they fooled the BPM check 85-100% of the time).
PULSELESS_CHORD_RHYTHMS = ("sustained", "syncopated", "charleston")
PULSELESS_BASS_STYLES = ("roots", "syncopated")


@dataclass
class DurationPolicy:
    """Clip lengths in seconds: mostly `fixed_seconds`, a share drawn uniformly in a range."""

    fixed_seconds: float = 5.0
    variable_share: float = 0.25
    min_seconds: float = 2.0
    max_seconds: float = 12.0

    def draw(self, rng: np.random.Generator) -> float:
        """One clip length in seconds (variable lengths rounded to 0.1 s)."""
        if rng.random() < self.variable_share:
            return round(float(rng.uniform(self.min_seconds, self.max_seconds)), 1)
        return self.fixed_seconds


@dataclass
class ClipSpec:
    """Everything needed to render one clip, decided before rendering.

    Attributes:
        clip_id: file stem, e.g. `drums-00042`.
        subset: `drums`, `melodic`, `band` or `classical`.
        kind: renderer, e.g. `kit_loop`, `break`, `part`, `chorale`.
        family: planning family; splits are assigned per family.
        group: split group: all clips of a group land in the same split.
        seed: seed of every random choice made while rendering.
        seconds_total: clip length in seconds.
        genre: caption genre.
        bpm: tempo in BPM (quarter notes per minute).
        key: e.g. "A minor", None for unpitched drums.
        params: kind-specific choices (kit id, pattern seed, GM programs, ...).
        split: `train`, `valid` or `test`.
    """

    clip_id: str
    subset: str
    kind: str
    family: str
    group: str
    seed: int
    seconds_total: float
    genre: str
    bpm: float
    key: str | None
    params: dict = field(default_factory=dict)
    split: str = ""

    def to_dict(self) -> dict:
        """Plain dict (for sending to worker processes and for debugging)."""
        return asdict(self)


@dataclass
class SourceCatalog:
    """Installed sources cleared for this build, and what was left out and why."""

    kits: list[drumkits.DrumKit]
    loops: list[breaks.BreakLoop]
    soundfont: Path | None
    chorale_paths: list[str]
    grooves: list[mma.Groove]
    sonic_pi_files: set[str]
    include_share_alike: bool
    excluded: list[str] = field(default_factory=list)


def discover_sources(include_share_alike: bool) -> SourceCatalog:
    """Find installed kits, loops, soundfont, chorales and MMA grooves, keeping only those
    whose licence class this build allows (see `licenses.is_allowed`)."""
    excluded = []
    sonic_pi_files = debian_cc0_files(SONIC_PI_COPYRIGHT)
    kits = []
    for kit in drumkits.find_hydrogen_kits() + drumkits.sonic_pi_kits(
            allowed_files=sonic_pi_files):
        if is_allowed(kit.license.license_class, include_share_alike):
            kits.append(kit)
        else:
            excluded.append(f"{kit.kit_id}: {kit.license.license_id} "
                            f"({kit.license.license_class})")
    loops = breaks.available_loops(allowed_files=sonic_pi_files)
    grooves: list[mma.Groove] = []
    soundfont = fluid.find_soundfont()
    if mma.mma_available() and soundfont is not None:
        if include_share_alike:
            grooves = mma.list_grooves()
        else:
            excluded.append("mma grooves: GPL-2.0-or-later (share-alike)")
    return SourceCatalog(kits, loops, soundfont, chorales.list_chorales(), grooves,
                         sonic_pi_files, include_share_alike, excluded)


def _family_rng(seed: int, family: str) -> np.random.Generator:
    return np.random.default_rng([seed, stable_int(family)])


def _balanced_choices(options: list, count: int, rng: np.random.Generator) -> list:
    """`count` items cycling through a seeded shuffle of `options` (balanced coverage)."""
    if not options:
        return []
    result = []
    while len(result) < count:
        result.extend(options[i] for i in rng.permutation(len(options)))
    return result[:count]


def _kit_for_genre(kits: list, genre: str, rng: np.random.Generator, style_of) -> object:
    suitable = [kit for kit in kits if style_of(kit) in GENRES[genre].kit_styles]
    pool = suitable or kits
    return pool[int(rng.integers(len(pool)))]


def _random_bpm(bpm_range: tuple[int, int], rng: np.random.Generator) -> int:
    return int(rng.integers(bpm_range[0], bpm_range[1] + 1))


def plan_kit_loops(catalog: SourceCatalog, count: int, seed: int,
                   durations: DurationPolicy) -> list[ClipSpec]:
    """Genre patterns sequenced on Hydrogen / Sonic Pi kits, two renders per pattern."""
    if not catalog.kits or count <= 0:
        return []
    rng = _family_rng(seed, "kit_loop")
    specs = []
    genres = _balanced_choices(sorted(GENRES), math.ceil(count / RENDERS_PER_PATTERN), rng)
    for genre in genres:
        pattern_seed = int(rng.integers(SEED_RANGE))
        for _ in range(RENDERS_PER_PATTERN):
            kit = _kit_for_genre(catalog.kits, genre, rng, lambda k: k.style)
            tuning = float(rng.uniform(0.94, 1.06)) if rng.random() < 0.4 else 1.0
            specs.append(ClipSpec(
                "", "drums", "kit_loop", "kit_loop", f"pattern:{pattern_seed}",
                int(rng.integers(SEED_RANGE)), durations.draw(rng), genre,
                _random_bpm(GENRES[genre].bpm_range, rng), None,
                {"kit_id": kit.kit_id, "pattern_seed": pattern_seed,
                 "tuning_factor": round(tuning, 4)}))
    return specs[:count]


def plan_gm_drum_loops(catalog: SourceCatalog, count: int, seed: int,
                       durations: DurationPolicy) -> list[ClipSpec]:
    """Genre patterns played on FluidR3_GM drum kits, two renders per pattern."""
    if catalog.soundfont is None or count <= 0:
        return []
    rng = _family_rng(seed, "gm_drum_loop")
    presets = sorted(GM_DRUM_KITS)
    specs = []
    genres = _balanced_choices(sorted(GENRES), math.ceil(count / RENDERS_PER_PATTERN), rng)
    for genre in genres:
        pattern_seed = int(rng.integers(SEED_RANGE))
        for _ in range(RENDERS_PER_PATTERN):
            preset = _kit_for_genre(presets, genre, rng, lambda p: GM_DRUM_KITS[p][1])
            specs.append(ClipSpec(
                "", "drums", "gm_drum_loop", "gm_drum_loop", f"pattern:{pattern_seed}",
                int(rng.integers(SEED_RANGE)), durations.draw(rng), genre,
                _random_bpm(GENRES[genre].bpm_range, rng), None,
                {"gm_kit": int(preset), "pattern_seed": pattern_seed}))
    return specs[:count]


def plan_breaks(catalog: SourceCatalog, count: int, seed: int,
                durations: DurationPolicy) -> list[ClipSpec]:
    """Sampled loops as is, re-pitched or chopped; grouped by recording (loop family)."""
    if not catalog.loops or count <= 0:
        return []
    rng = _family_rng(seed, "break")
    specs = []
    for loop in _balanced_choices(catalog.loops, count, rng):
        edit = str(rng.choice(["loop", "varispeed", "chop"], p=[0.25, 0.35, 0.40]))
        is_breakbeat = loop.genre_by_bpm == breaks.BREAK_LOOPS[0].genre_by_bpm
        speed_range = (0.75, 1.3) if is_breakbeat else (0.85, 1.15)
        speed = 1.0 if edit == "loop" else float(rng.uniform(*speed_range))
        bpm = breaks.native_bpm(loop) * speed
        specs.append(ClipSpec(
            "", "drums", "break", "break", f"loop:{loop.family}",
            int(rng.integers(SEED_RANGE)), durations.draw(rng), loop.genre_at(bpm),
            round(bpm, 2), None,
            {"file_stem": loop.file_stem, "speed_factor": round(speed, 5),
             "chop": edit == "chop"}))
    return specs


def _piece_choices(style_name: str, rng: np.random.Generator) -> dict:
    """Key, tempo, progression and swing of one generated piece of `style_name`."""
    style = STYLES[style_name]
    keys = [key for key in all_keys() if key.mode in style.modes]
    key = keys[int(rng.integers(len(keys)))]
    progressions = (style.progressions or {}).get(key.mode)
    if progressions is None:
        progressions = PROGRESSIONS[key.mode]
    return {
        "style": style_name,
        "key": key.flat_name,
        "bpm": _random_bpm(style.bpm_range, rng),
        "degrees": list(progressions[int(rng.integers(len(progressions)))]),
        "sevenths": bool(rng.random() < style.seventh_probability),
        "beats_per_chord": float(rng.choice(style.beats_per_chord)),
        "swing": round(float(rng.uniform(*style.swing_range)), 4),
        "swing_unit_beats": style.swing_unit_beats,
        "piece_seed": int(rng.integers(SEED_RANGE)),
    }


def _with_pulse(choices: tuple[str, ...], pulseless: tuple[str, ...]) -> list[str]:
    """`choices` without the pulseless ones, unless nothing else is left."""
    return [choice for choice in choices if choice not in pulseless] or list(choices)


def plan_parts(catalog: SourceCatalog, count: int, seed: int,
               durations: DurationPolicy) -> list[ClipSpec]:
    """Chords, arpeggios, melodies and bass lines on GM instruments, two renders a piece."""
    if catalog.soundfont is None or count <= 0:
        return []
    rng = _family_rng(seed, "part")
    specs = []
    styles = _balanced_choices(sorted(STYLES), math.ceil(count / RENDERS_PER_PIECE), rng)
    for style_name in styles:
        piece = _piece_choices(style_name, rng)
        style = STYLES[style_name]
        for part in rng.choice(PART_KINDS, size=RENDERS_PER_PIECE, replace=False):
            part = str(part)
            programs = {"chords": style.chord_programs, "arpeggio": style.arp_programs,
                        "melody": style.lead_programs, "bass line": style.bass_programs}[part]
            params = dict(piece, part=part, program=int(rng.choice(programs)),
                          backing_program=int(rng.choice(style.chord_programs)),
                          rhythm=str(rng.choice(_with_pulse(style.chord_rhythms,
                                                            PULSELESS_CHORD_RHYTHMS))),
                          bass_style=str(rng.choice(_with_pulse(style.bass_styles,
                                                                PULSELESS_BASS_STYLES))))
            specs.append(ClipSpec(
                "", "melodic", "part", "part", f"midi:{piece['piece_seed']}",
                int(rng.integers(SEED_RANGE)), durations.draw(rng), style_name,
                piece["bpm"], piece["key"], params))
    return specs[:count]


def plan_bands(catalog: SourceCatalog, count: int, seed: int,
               durations: DurationPolicy) -> list[ClipSpec]:
    """Drums + bass + chords (+ lead) on GM instruments, one render per piece."""
    if catalog.soundfont is None or count <= 0:
        return []
    rng = _family_rng(seed, "band")
    band_styles = sorted(name for name, style in STYLES.items() if style.drum_genre)
    specs = []
    for style_name in _balanced_choices(band_styles, count, rng):
        style = STYLES[style_name]
        piece = _piece_choices(style_name, rng)
        pattern_seed = int(rng.integers(SEED_RANGE))
        params = dict(piece, pattern_seed=pattern_seed,
                      gm_kit=int(rng.choice(style.gm_drum_kits)),
                      chord_program=int(rng.choice(style.chord_programs)),
                      bass_program=int(rng.choice(style.bass_programs)),
                      lead_program=(int(rng.choice(style.lead_programs))
                                    if rng.random() < 0.5 else None),
                      rhythm=str(rng.choice(style.chord_rhythms)),
                      bass_style=str(rng.choice(style.bass_styles)))
        specs.append(ClipSpec(
            "", "band", "band", "band", f"midi:{piece['piece_seed']}",
            int(rng.integers(SEED_RANGE)), durations.draw(rng), style_name, piece["bpm"],
            piece["key"], params))
    return specs


def plan_mma(catalog: SourceCatalog, count: int, seed: int,
             durations: DurationPolicy) -> list[ClipSpec]:
    """MMA grooves over generated chord charts; grouped by groove library file."""
    if not catalog.grooves or count <= 0:
        return []
    rng = _family_rng(seed, "mma")
    specs = []
    for groove in _balanced_choices(catalog.grooves, count, rng):
        key = all_keys()[int(rng.integers(24))]
        progression = PROGRESSIONS[key.mode][int(rng.integers(len(PROGRESSIONS[key.mode])))]
        chord_names = [chord.name for chord in
                       progression_chords(key, progression, False)]
        specs.append(ClipSpec(
            "", "band", "mma", "mma", f"mma:{groove.stem}", int(rng.integers(SEED_RANGE)),
            durations.draw(rng), groove.genre, _random_bpm((80, 140), rng), key.flat_name,
            {"groove": groove.name, "chords": chord_names}))
    return specs


def plan_chorales(catalog: SourceCatalog, count: int, seed: int,
                  durations: DurationPolicy) -> list[ClipSpec]:
    """Bach chorale excerpts on varied ensembles, three clips per chorale."""
    if not catalog.chorale_paths or catalog.soundfont is None or count <= 0:
        return []
    rng = _family_rng(seed, "chorale")
    needed = math.ceil(count / CLIPS_PER_CHORALE)
    picks = rng.permutation(len(catalog.chorale_paths))[:needed]
    specs = []
    for index in sorted(int(i) for i in picks):
        path = catalog.chorale_paths[index]
        title = chorales.chorale_title(path)
        for ensemble in rng.choice(sorted(chorales.ENSEMBLES), size=CLIPS_PER_CHORALE,
                                   replace=False):
            specs.append(ClipSpec(
                "", "classical", "chorale", "chorale", f"chorale:{title}",
                int(rng.integers(SEED_RANGE)), durations.draw(rng), "baroque",
                _random_bpm((70, 110), rng), None,
                {"path": path, "title": title, "ensemble": str(ensemble),
                 "transpose": int(rng.integers(-4, 5))}))
    return specs[:count]


def subset_counts(num_clips: int, subsets: tuple[str, ...]) -> dict[str, int]:
    """Clips per requested subset: `DEFAULT_SUBSET_SHARES` renormalised over `subsets`."""
    total_share = sum(DEFAULT_SUBSET_SHARES[name] for name in subsets)
    counts = {name: round(num_clips * DEFAULT_SUBSET_SHARES[name] / total_share)
              for name in subsets}
    counts[subsets[0]] += num_clips - sum(counts.values())
    return counts


def plan_corpus(catalog: SourceCatalog, num_clips: int, seed: int, subsets: tuple[str, ...],
                durations: DurationPolicy,
                split_fractions: tuple[float, float, float] = DEFAULT_SPLIT_FRACTIONS,
                ) -> list[ClipSpec]:
    """All clips of the corpus with ids and splits (before any `--max-clips` sampling)."""
    unknown = sorted(set(subsets) - set(SUBSETS))
    if unknown:
        raise ValueError(f"unknown subsets {unknown}; known: {SUBSETS}")
    counts = subset_counts(num_clips, subsets)
    specs: list[ClipSpec] = []
    if "drums" in counts:
        drums = counts["drums"]
        kit_count = round(drums * DRUM_FAMILY_SHARES["kit_loop"])
        gm_count = round(drums * DRUM_FAMILY_SHARES["gm_drum_loop"])
        specs += plan_kit_loops(catalog, kit_count, seed, durations)
        specs += plan_gm_drum_loops(catalog, gm_count, seed, durations)
        specs += plan_breaks(catalog, drums - kit_count - gm_count, seed, durations)
    if "melodic" in counts:
        specs += plan_parts(catalog, counts["melodic"], seed, durations)
    if "band" in counts:
        band = counts["band"]
        mma_count = band // 2 if catalog.grooves else 0
        specs += plan_bands(catalog, band - mma_count, seed, durations)
        specs += plan_mma(catalog, mma_count, seed, durations)
    if "classical" in counts:
        specs += plan_chorales(catalog, counts["classical"], seed, durations)
    _assign_ids(specs)
    _assign_splits(specs, seed, split_fractions)
    return specs


def _assign_ids(specs: list[ClipSpec]) -> None:
    counters: dict[str, int] = {}
    for spec in specs:
        counters[spec.subset] = counters.get(spec.subset, 0) + 1
        spec.clip_id = f"{spec.subset}-{counters[spec.subset]:05d}"


def _assign_splits(specs: list[ClipSpec], seed: int,
                   fractions: tuple[float, float, float]) -> None:
    by_family: dict[str, list[ClipSpec]] = {}
    for spec in specs:
        by_family.setdefault(spec.family, []).append(spec)
    for family, family_specs in by_family.items():
        assignment = assign_group_splits([s.group for s in family_specs], seed, family,
                                         fractions)
        for spec in family_specs:
            spec.split = assignment[spec.group]


def sample_for_quick_run(specs: list[ClipSpec], max_clips: int | None,
                         seed: int) -> list[ClipSpec]:
    """A seeded random `max_clips` of the planned clips (all when None), in plan order.

    Drawn per split in proportion to its size (each split keeps at least one clip when
    `max_clips` allows), and after planning, so every clip keeps the id, split and content
    it has in the full build: a quick run is a representative slice of it.
    """
    if max_clips is None or max_clips >= len(specs):
        return specs
    rng = np.random.default_rng([seed, stable_int("max-clips")])
    by_split: dict[str, list[int]] = {}
    for index, spec in enumerate(specs):
        by_split.setdefault(spec.split, []).append(index)
    quotas = {split: max_clips * len(indices) / len(specs) for split, indices in by_split.items()}
    counts = {split: int(quota) for split, quota in quotas.items()}
    if max_clips >= len(by_split):
        counts = {split: max(count, 1) for split, count in counts.items()}
    by_remainder = sorted(quotas, key=lambda split: counts[split] - quotas[split])
    while sum(counts.values()) < max_clips:
        split = by_remainder.pop(0)
        counts[split] += 1
    while sum(counts.values()) > max_clips:
        counts[max(counts, key=counts.get)] -= 1
    keep = []
    for split, indices in sorted(by_split.items()):
        chosen = rng.permutation(len(indices))[: counts[split]]
        keep.extend(indices[int(i)] for i in chosen)
    return [specs[i] for i in sorted(keep)]


def source_licence_summary(catalog: SourceCatalog) -> list[str]:
    """One line per source licence in the catalog (for the build log)."""
    lines = [f"{kit.kit_id}: {kit.license.license_id} ({kit.license.license_class})"
             for kit in catalog.kits]
    if catalog.loops:
        lines.append(f"sonic-pi loops ({len(catalog.loops)}): {SONIC_PI_SAMPLES.license_id}")
    return lines
