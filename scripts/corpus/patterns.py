"""Genre drum patterns: step-grid templates per genre (16 steps a 4/4 bar) turned into
seeded 4-bar patterns of hits at positions in beats (quarter notes) with velocities in 0..1.

A pattern is pure data (no audio); `sequencer` places it in time (BPM, swing, humanising)
and plays it on a kit; `parts.gm_drum_notes` plays the same pattern on a GM drum kit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STEPS_PER_BEAT = 4
BEATS_PER_BAR = 4
STEPS_PER_BAR = STEPS_PER_BEAT * BEATS_PER_BAR
PATTERN_BARS = 4

# Step characters: velocity of a hit; "." is a rest.
STEP_VELOCITIES = {"X": 1.0, "x": 0.78, "o": 0.45, "g": 0.28}


@dataclass(frozen=True)
class DrumHit:
    """One drum hit: a role, its position in beats from the pattern start, a velocity 0..1."""

    role: str
    position_beats: float
    velocity: float


@dataclass(frozen=True)
class GenreStyle:
    """How a genre's drums sound.

    Attributes:
        name: genre as written in captions, e.g. "hip hop".
        bpm_range: inclusive tempo range in BPM (quarter notes per minute).
        swing_range: swing ratio range; 0.5 is straight, 0.667 is a triplet shuffle.
        swing_unit_beats: note value the swing applies to (0.25 = 16ths, 0.5 = 8ths).
        humanise_seconds: standard deviation of timing jitter in seconds.
        kit_styles: kit styles that suit the genre (see `drumkits.DrumKit.style`).
        variants: alternative templates, role -> step string of 16 or 32 steps.
        extras: optional layers (role, step string, probability of being added).
        fill_probability: chance that bar 4 ends with a fill.
        crash_probability: chance of a crash on the first downbeat of the pattern.
        ghost_snares: whether random ghost notes may be added to the snare.
        hat_rolls: whether fast hi-hat rolls (32nds / triplets) may be added (trap).
    """

    name: str
    bpm_range: tuple[int, int]
    swing_range: tuple[float, float]
    swing_unit_beats: float
    humanise_seconds: float
    kit_styles: tuple[str, ...]
    variants: tuple[dict[str, str], ...]
    extras: tuple[tuple[str, str, float], ...] = ()
    fill_probability: float = 0.3
    crash_probability: float = 0.0
    ghost_snares: bool = False
    hat_rolls: bool = False


@dataclass(frozen=True)
class DrumPattern:
    """A seeded 4-bar drum pattern in beats, before tempo and swing are applied."""

    genre: str
    pattern_seed: int
    hits: tuple[DrumHit, ...]
    swing: float
    swing_unit_beats: float
    humanise_seconds: float
    bars: int = PATTERN_BARS

    @property
    def length_beats(self) -> float:
        """Pattern length in beats."""
        return float(self.bars * BEATS_PER_BAR)

    def roles(self) -> list[str]:
        """Roles the pattern plays, in first-hit order."""
        seen: dict[str, None] = {}
        for hit in sorted(self.hits, key=lambda h: h.position_beats):
            seen.setdefault(hit.role, None)
        return list(seen)


ELECTRONIC = ("electronic", "808")
ACOUSTIC = ("acoustic",)
ANY_KIT = ("acoustic", "electronic", "808")

GENRES: dict[str, GenreStyle] = {
    style.name: style
    for style in (
        GenreStyle(
            "house", (118, 128), (0.5, 0.56), 0.25, 0.002, ELECTRONIC,
            (
                {"kick": "X...X...X...X...", "clap": "....X.......X...",
                 "hat_closed": "..x...x...x...x.", "hat_open": ""},
                {"kick": "X...X...X...X...", "snare": "....X.......X...",
                 "hat_closed": "x.o.x.o.x.o.x.o.", "hat_open": "..x...x...x...x."},
                {"kick": "X...X...X...X...", "clap": "....X.......X...",
                 "hat_open": "..x...x...x...x.", "shaker": "xoxoxoxoxoxoxoxo"},
            ),
            extras=(("shaker", "gogxgogxgogxgogx", 0.3), ("rim", "...x..x....x..x.", 0.25)),
            fill_probability=0.15, crash_probability=0.3,
        ),
        GenreStyle(
            "techno", (125, 140), (0.5, 0.52), 0.25, 0.001, ELECTRONIC,
            (
                {"kick": "X...X...X...X...", "hat_open": "..x...x...x...x.",
                 "hat_closed": "xoxoxoxoxoxoxoxo"},
                {"kick": "X...X...X...X...", "clap": "....x.......x...",
                 "hat_closed": "..X...X...X...X.", "rim": "...x..x..x....x."},
                {"kick": "X...X...X...X...", "hat_closed": "x.x.x.x.x.x.x.x.",
                 "ride": "..x...x...x...x."},
            ),
            extras=(("clap", "....x.......x...", 0.3), ("crash", "X...............", 0.15)),
            fill_probability=0.1,
        ),
        GenreStyle(
            "hip hop", (84, 98), (0.54, 0.62), 0.25, 0.008, ANY_KIT,
            (
                {"kick": "X......x..X.....", "snare": "....X.......X...",
                 "hat_closed": "x.x.x.x.x.x.x.x."},
                {"kick": "X.....x...x.x...", "snare": "....X.......X...",
                 "hat_closed": "x.x.x.x.x.x.x.xo"},
                {"kick": "X..x......X..x..", "snare": "....X.......X...",
                 "hat_closed": "x.x.x.x.x.x.x.x.", "hat_open": "..............x."},
            ),
            extras=(("shaker", "..o...o...o...o.", 0.15),),
            fill_probability=0.15, ghost_snares=True,
        ),
        GenreStyle(
            "lo-fi hip hop", (70, 88), (0.58, 0.66), 0.25, 0.012, ANY_KIT,
            (
                {"kick": "X.......x.X.....", "snare": "....X.......X...",
                 "hat_closed": "x.o.x.o.x.o.x.o."},
                {"kick": "X..x......x.....", "rim": "....X.......X...",
                 "hat_closed": "x.x.x.x.x.x.x.x."},
            ),
            fill_probability=0.05, ghost_snares=True,
        ),
        GenreStyle(
            "trap", (130, 160), (0.5, 0.52), 0.25, 0.002, ELECTRONIC,
            (
                {"kick": "X......x..x.....X.....x...x.....",
                 "snare": "........X...............X.......",
                 "hat_closed": "x.x.x.x.x.x.x.x."},
                {"kick": "X.........X..x..", "clap": "........X.......",
                 "hat_closed": "x.x.x.x.x.x.x.x."},
            ),
            extras=(("hat_open", "..............x.", 0.3),),
            fill_probability=0.0, hat_rolls=True,
        ),
        GenreStyle(
            "rock", (100, 140), (0.5, 0.52), 0.25, 0.006, ACOUSTIC,
            (
                {"kick": "X.......X.x.....", "snare": "....X.......X...",
                 "hat_closed": "x.x.x.x.x.x.x.x."},
                {"kick": "X.x.....X.x.....", "snare": "....X.......X...",
                 "hat_closed": "X.x.X.x.X.x.X.x."},
                {"kick": "X.......X.......", "snare": "....X.......X...",
                 "ride": "x.x.x.x.x.x.x.x."},
            ),
            fill_probability=0.5, crash_probability=0.6,
        ),
        GenreStyle(
            "pop", (90, 128), (0.5, 0.54), 0.25, 0.005, ANY_KIT,
            (
                {"kick": "X.......X.x.....", "snare": "....X.......X...",
                 "hat_closed": "x.x.x.x.x.x.x.x."},
                {"kick": "X..x....X.......", "clap": "....X.......X...",
                 "hat_closed": "x.xox.xox.xox.xo"},
            ),
            extras=(("tambourine", "....x.......x...", 0.3), ("shaker", "xoxoxoxoxoxoxoxo", 0.2)),
            fill_probability=0.35, crash_probability=0.4,
        ),
        GenreStyle(
            "funk", (92, 112), (0.5, 0.57), 0.25, 0.005, ACOUSTIC,
            (
                {"kick": "X..x..x...X..x..", "snare": "....X..o.o..X..o",
                 "hat_closed": "xoxoxoxoxoxoxoxo"},
                {"kick": "X.x...x..x..x...", "snare": "....X.o..o..X.o.",
                 "hat_closed": "x.x.x.x.x.x.x.x.", "hat_open": "......x........."},
            ),
            extras=(("tambourine", "....x.......x...", 0.2), ("cowbell", "x...x...x...x...", 0.1)),
            fill_probability=0.35, ghost_snares=True,
        ),
        GenreStyle(
            "drum and bass", (165, 178), (0.5, 0.53), 0.25, 0.003, ANY_KIT,
            (
                {"kick": "X.........X.....", "snare": "....X.......X...",
                 "hat_closed": "x.x.x.x.x.x.x.x."},
                {"kick": "X.........x.X...", "snare": "....X..o....X...",
                 "ride": "x.x.x.x.x.x.x.x."},
                {"kick": "X.X.......X.....", "snare": "....X.......X..o",
                 "hat_closed": "x.xxx.x.x.xxx.x."},
            ),
            extras=(("shaker", "xoxoxoxoxoxoxoxo", 0.25),),
            fill_probability=0.3, ghost_snares=True,
        ),
        GenreStyle(
            "reggae", (68, 84), (0.58, 0.65), 0.5, 0.006, ACOUSTIC,
            (
                {"kick": "........X.......", "rim": "........X.......",
                 "hat_closed": "x.x.x.x.x.x.x.x."},
                {"kick": "........X.......", "snare": "........X.......",
                 "hat_closed": "x.x.x.x.x.x.x.x.", "hat_open": "......x........."},
                {"kick": "X.......X.......", "rim": "....x.......x...",
                 "hat_closed": "..x...x...x...x."},
            ),
            fill_probability=0.3,
        ),
        GenreStyle(
            "disco", (112, 124), (0.5, 0.52), 0.25, 0.004, ANY_KIT,
            (
                {"kick": "X...X...X...X...", "snare": "....X.......X...",
                 "hat_closed": "x.o.x.o.x.o.x.o.", "hat_open": "..x...x...x...x."},
                {"kick": "X...X...X...X...", "clap": "....X.......X...",
                 "hat_open": "..X...X...X...X.", "hat_closed": "x...x...x...x..."},
            ),
            extras=(("tambourine", "xoxoxoxoxoxoxoxo", 0.3), ("cowbell", "..x...x...x...x.", 0.1)),
            fill_probability=0.25, crash_probability=0.4,
        ),
        GenreStyle(
            "breakbeat", (120, 138), (0.5, 0.55), 0.25, 0.004, ANY_KIT,
            (
                {"kick": "X.X.......X.....", "snare": "....X..o.o..X...",
                 "hat_closed": "x.x.x.x.x.x.x.x."},
                {"kick": "X.........XX....", "snare": "....X.......X..o",
                 "hat_closed": "x.x.x.x.x.x.x.x.", "hat_open": "..............x."},
            ),
            fill_probability=0.3, ghost_snares=True,
        ),
        GenreStyle(
            "jazz swing", (110, 190), (0.62, 0.68), 0.5, 0.007, ACOUSTIC,
            (
                {"ride": "X...x.x.X...x.x.", "hat_pedal": "....x.......x...",
                 "kick": "g...g...g...g..."},
                {"ride": "X...x.x.X...x.x.", "hat_pedal": "....x.......x...",
                 "snare": "......g.......o."},
            ),
            fill_probability=0.2, ghost_snares=True,
        ),
        GenreStyle(
            "dubstep", (138, 142), (0.5, 0.52), 0.25, 0.002, ELECTRONIC,
            (
                {"kick": "X..........x....", "snare": "........X.......",
                 "hat_closed": "..x...x...x...x."},
                {"kick": "X.....x.........", "clap": "........X.......",
                 "hat_closed": "x.x.x.x.x.x.x.x."},
            ),
            fill_probability=0.15,
        ),
        GenreStyle(
            "uk garage", (128, 136), (0.56, 0.62), 0.25, 0.004, ELECTRONIC,
            (
                {"kick": "X.........X..x..", "snare": "....X.......X...",
                 "hat_closed": "..x...x...x...x."},
                {"kick": "X......x..X.....", "clap": "....X.......X...",
                 "hat_closed": "x.xox.xox.xox.xo"},
            ),
            extras=(("shaker", "gogxgogxgogxgogx", 0.3),),
            fill_probability=0.1,
        ),
        GenreStyle(
            "afrobeat", (100, 118), (0.5, 0.56), 0.25, 0.006, ACOUSTIC,
            (
                {"kick": "X.....x.X.x.....", "snare": "....x..o..o.x..o",
                 "hat_closed": "x.xxx.xxx.xxx.xx"},
                {"kick": "X..x....X..x....", "rim": "..x..x....x..x..",
                 "hat_closed": "x.x.x.x.x.x.x.x.", "hat_open": "......x.......x."},
            ),
            extras=(("shaker", "xoxoxoxoxoxoxoxo", 0.4), ("cowbell", "x.x.xx.x.x.xx.x.", 0.2)),
            fill_probability=0.2,
        ),
        GenreStyle(
            "bossa nova", (120, 144), (0.5, 0.53), 0.25, 0.006, ACOUSTIC,
            (
                {"kick": "X..xX..xX..xX..x", "rim": "x..x..x...x..x..",
                 "hat_closed": "x.x.x.x.x.x.x.x."},
                {"kick": "X..xX..xX..xX..x", "rim": "x..x..x...x..x....x..x...x..x...",
                 "ride": "x.x.x.x.x.x.x.x."},
            ),
            extras=(("shaker", "xoxoxoxoxoxoxoxo", 0.3),),
            fill_probability=0.1,
        ),
    )
}


def steps_to_hits(role: str, steps: str, bar_offset: int = 0) -> list[DrumHit]:
    """Hits of a step string (16 steps a bar, e.g. "X...x..."), starting at bar `bar_offset`."""
    hits = []
    for index, char in enumerate(steps):
        if char in STEP_VELOCITIES:
            position = (bar_offset * STEPS_PER_BAR + index) / STEPS_PER_BEAT
            hits.append(DrumHit(role, position, STEP_VELOCITIES[char]))
    return hits


def _two_bar_template(variant: dict[str, str]) -> dict[str, str]:
    """Expand every role's step string to 32 steps (two bars)."""
    expanded = {}
    for role, steps in variant.items():
        if not steps:
            continue
        if len(steps) % STEPS_PER_BAR:
            raise ValueError(f"{role!r} steps must be a multiple of 16 long, got {len(steps)}")
        expanded[role] = (steps * (2 * STEPS_PER_BAR // len(steps) or 1))[: 2 * STEPS_PER_BAR]
    return expanded


def _mutate_kick(steps: str, rng: np.random.Generator) -> str:
    """Move or add one kick on an off-beat 16th (never touching the first downbeat)."""
    cells = list(steps)
    candidates = [i for i in range(2, len(cells)) if cells[i] == "." and i % 4 != 0]
    if candidates:
        cells[int(rng.choice(candidates))] = "x"
    return "".join(cells)


def _add_ghost_snares(steps: str, rng: np.random.Generator, count: int) -> str:
    cells = list(steps)
    free = [i for i in range(len(cells)) if cells[i] == "." and i % 2 == 1]
    for index in rng.choice(free, size=min(count, len(free)), replace=False) if free else []:
        cells[int(index)] = "g"
    return "".join(cells)


def _fill_hits(bar_index: int, kit_style_roles: tuple[str, ...],
               rng: np.random.Generator) -> list[DrumHit]:
    """A one-beat fill on the last beat of bar `bar_index`: 16th snare or tom run."""
    start = bar_index * BEATS_PER_BAR + 3.0
    roles = list(kit_style_roles)
    hits = []
    for step in range(4):
        role = roles[min(step * len(roles) // 4, len(roles) - 1)]
        velocity = 0.6 + 0.1 * step + float(rng.uniform(-0.05, 0.05))
        hits.append(DrumHit(role, start + step / STEPS_PER_BEAT, min(velocity, 1.0)))
    return hits


def _hat_roll_hits(bar_index: int, rng: np.random.Generator) -> list[DrumHit]:
    """Trap hi-hat roll: 32nd notes or 16th triplets over one beat of bar `bar_index`."""
    beat = bar_index * BEATS_PER_BAR + int(rng.integers(1, 4))
    divisions = int(rng.choice([6, 8]))
    return [
        DrumHit("hat_closed", beat + k / divisions, 0.45 + 0.4 * k / divisions)
        for k in range(divisions)
    ]


def generate_pattern(genre: str, pattern_seed: int) -> DrumPattern:
    """A 4-bar pattern of `genre`, fully determined by `pattern_seed`.

    Bars 1-2 come from one of the genre's templates with seeded mutations (moved kicks,
    ghost snares, optional percussion layers), bars 3-4 repeat them; bar 4 may end with a
    fill and bar 1 may open with a crash.
    """
    if genre not in GENRES:
        raise ValueError(f"unknown genre {genre!r}; known: {sorted(GENRES)}")
    style = GENRES[genre]
    rng = np.random.default_rng(pattern_seed)
    template = _two_bar_template(style.variants[int(rng.integers(len(style.variants)))])
    for role, steps, probability in style.extras:
        if role not in template and rng.random() < probability:
            template.update(_two_bar_template({role: steps}))
    if "kick" in template and rng.random() < 0.35:
        template["kick"] = _mutate_kick(template["kick"], rng)
    if style.ghost_snares and "snare" in template and rng.random() < 0.5:
        template["snare"] = _add_ghost_snares(template["snare"], rng, int(rng.integers(1, 4)))

    hits: list[DrumHit] = []
    fill_bar = PATTERN_BARS - 1 if rng.random() < style.fill_probability else None
    fill_roles = ("snare", "snare", "tom_mid", "tom_low") if rng.random() < 0.5 else ("snare",)
    for bar in range(PATTERN_BARS):
        for role, steps in template.items():
            bar_steps = steps[(bar % 2) * STEPS_PER_BAR:(bar % 2 + 1) * STEPS_PER_BAR]
            bar_hits = steps_to_hits(role, bar_steps, bar_offset=bar)
            if bar == fill_bar:
                bar_hits = [h for h in bar_hits if h.position_beats < bar * BEATS_PER_BAR + 3.0
                            or role in ("kick", "hat_pedal")]
            hits.extend(bar_hits)
        if bar == fill_bar:
            hits.extend(_fill_hits(bar, fill_roles, rng))
        if style.hat_rolls and "hat_closed" in template and rng.random() < 0.5:
            hits.extend(_hat_roll_hits(bar, rng))
    if rng.random() < style.crash_probability:
        hits.append(DrumHit("crash", 0.0, 0.85))

    velocity_jitter = rng.uniform(-0.06, 0.06, size=len(hits))
    hits = [
        DrumHit(h.role, h.position_beats, float(np.clip(h.velocity + jitter, 0.05, 1.0)))
        for h, jitter in zip(hits, velocity_jitter)
    ]
    hits = _deduplicate(hits)
    return DrumPattern(
        genre=genre,
        pattern_seed=pattern_seed,
        hits=tuple(sorted(hits, key=lambda h: (h.position_beats, h.role))),
        swing=float(rng.uniform(*style.swing_range)),
        swing_unit_beats=style.swing_unit_beats,
        humanise_seconds=style.humanise_seconds,
    )


def _deduplicate(hits: list[DrumHit]) -> list[DrumHit]:
    """Keep the loudest of hits sharing a role and position (e.g. a roll over a hat)."""
    loudest: dict[tuple[str, float], DrumHit] = {}
    for hit in hits:
        key = (hit.role, round(hit.position_beats, 6))
        if key not in loudest or hit.velocity > loudest[key].velocity:
            loudest[key] = hit
    return list(loudest.values())
