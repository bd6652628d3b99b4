"""Musical styles for soundfont-rendered clips: tempo range (BPM), modes, chord rhythms, bass
styles and the General MIDI instruments that suit each genre, plus its drum genre for band
clips (None for styles played without drums)."""
from __future__ import annotations

from dataclasses import dataclass

from scripts.corpus.patterns import GENRES


@dataclass(frozen=True)
class MusicStyle:
    """What a generated piece of a genre may use.

    Attributes:
        name: genre as written in captions.
        bpm_range: inclusive tempo range in BPM.
        modes: allowed key modes (`major`, `minor`).
        seventh_probability: chance that the progression uses seventh chords.
        beats_per_chord: allowed chord durations in beats (4 = one chord a bar).
        chord_programs / lead_programs / arp_programs / bass_programs: GM program numbers.
        chord_rhythms: names from `parts.CHORD_RHYTHMS`.
        bass_styles: names from `parts.BASS_STYLES`.
        drum_genre: `patterns.GENRES` key for band clips, None when played without drums.
        gm_drum_kits: FluidR3_GM drum kit presets (bank 128) for band clips.
        swing_range / swing_unit_beats: swing of drum-less clips (band clips take the
            drum pattern's swing).
        progressions: scale-degree progressions overriding `theory.PROGRESSIONS`, by mode.
    """

    name: str
    bpm_range: tuple[int, int]
    modes: tuple[str, ...]
    seventh_probability: float
    beats_per_chord: tuple[float, ...]
    chord_programs: tuple[int, ...]
    chord_rhythms: tuple[str, ...]
    bass_programs: tuple[int, ...]
    bass_styles: tuple[str, ...]
    lead_programs: tuple[int, ...]
    arp_programs: tuple[int, ...]
    drum_genre: str | None = None
    gm_drum_kits: tuple[int, ...] = (0,)
    swing_range: tuple[float, float] = (0.5, 0.5)
    swing_unit_beats: float = 0.25
    progressions: dict[str, tuple[tuple[int, ...], ...]] | None = None


_JAZZ_PROGRESSIONS = {
    "major": ((2, 5, 1, 1), (2, 5, 1, 6), (1, 6, 2, 5), (3, 6, 2, 5), (1, 4, 3, 6)),
    "minor": ((2, 5, 1, 1), (1, 4, 5, 1), (1, 6, 2, 5)),
}

STYLES: dict[str, MusicStyle] = {
    style.name: style
    for style in (
        MusicStyle("pop", GENRES["pop"].bpm_range, ("major", "minor"), 0.15, (4.0, 2.0),
                   (0, 4, 25, 48, 27), ("quarters", "eighths", "syncopated", "half notes"),
                   (33, 34), ("roots", "root eighths", "root fifth"),
                   (80, 73, 11, 65), (0, 12, 46, 8), "pop", (0, 8, 16)),
        MusicStyle("rock", GENRES["rock"].bpm_range, ("major", "minor"), 0.0, (4.0, 2.0),
                   (29, 30, 27, 18), ("eighths", "quarters", "half notes"),
                   (34, 33), ("root eighths", "roots"), (29, 30, 18), (27, 0),
                   "rock", (0, 8, 16)),
        MusicStyle("funk", GENRES["funk"].bpm_range, ("minor", "major"), 0.8, (4.0, 2.0),
                   (7, 28, 4, 61), ("syncopated", "sixteenth skank", "offbeat stabs"),
                   (36, 33), ("syncopated", "octaves"), (65, 66, 61, 56), (7, 4),
                   "funk", (0, 8)),
        MusicStyle("jazz", GENRES["jazz swing"].bpm_range, ("major", "minor"), 1.0, (4.0, 2.0),
                   (4, 0, 26, 11), ("charleston", "syncopated", "half notes"),
                   (32,), ("walking",), (66, 56, 11, 73, 65), (0, 11),
                   "jazz swing", (32, 40), progressions=_JAZZ_PROGRESSIONS),
        MusicStyle("house", GENRES["house"].bpm_range, ("minor", "major"), 0.6, (4.0,),
                   (0, 16, 48, 89, 4), ("offbeat stabs", "syncopated", "sustained"),
                   (38, 39), ("octaves", "syncopated", "root eighths"), (81, 80, 0),
                   (81, 80, 12), "house", (24, 25)),
        MusicStyle("disco", GENRES["disco"].bpm_range, ("major", "minor"), 0.4, (4.0, 2.0),
                   (48, 27, 61, 4), ("eighths", "offbeat stabs", "syncopated"),
                   (33, 34), ("octaves",), (73, 56, 48), (46, 27), "disco", (0, 24)),
        MusicStyle("reggae", GENRES["reggae"].bpm_range, ("major", "minor"), 0.1, (4.0,),
                   (16, 27, 17), ("skank",), (33,), ("one drop",), (22, 21, 73), (27,),
                   "reggae", (0, 8)),
        MusicStyle("lo-fi hip hop", GENRES["lo-fi hip hop"].bpm_range, ("minor", "major"),
                   1.0, (4.0,), (4, 0, 24, 11), ("sustained", "syncopated", "half notes"),
                   (33, 32), ("roots", "root fifth"), (11, 73, 59, 4), (0, 4, 8, 46),
                   "lo-fi hip hop", (0, 8, 32, 40)),
        MusicStyle("hip hop", GENRES["hip hop"].bpm_range, ("minor",), 0.3, (4.0,),
                   (0, 48, 52, 89), ("sustained", "half notes", "quarters"),
                   (38, 33), ("roots", "long glide"), (0, 73, 10, 40), (0, 10, 46),
                   "hip hop", (0, 8, 25)),
        MusicStyle("bossa nova", GENRES["bossa nova"].bpm_range, ("major", "minor"), 1.0,
                   (4.0, 2.0), (24,), ("syncopated", "charleston"), (32,), ("root fifth",),
                   (73, 66, 71), (24,), "bossa nova", (0, 40, 32),
                   progressions=_JAZZ_PROGRESSIONS),
        MusicStyle("trap", GENRES["trap"].bpm_range, ("minor",), 0.2, (4.0,),
                   (89, 10, 0, 88), ("sustained", "half notes"), (38,), ("long glide",),
                   (10, 73, 80, 8), (10, 8, 0), "trap", (25,)),
        MusicStyle("drum and bass", GENRES["drum and bass"].bpm_range, ("minor",), 0.5, (4.0,),
                   (89, 48, 4, 94), ("sustained",), (38, 39), ("long glide", "roots"),
                   (81, 73, 4), (81, 4), "drum and bass", (24, 0)),
        MusicStyle("afrobeat", GENRES["afrobeat"].bpm_range, ("major", "minor"), 0.4, (4.0,),
                   (27, 61, 4), ("sixteenth skank", "offbeat stabs"), (33,), ("syncopated",),
                   (65, 56, 66), (27, 12), "afrobeat", (0, 8)),
        MusicStyle("techno", GENRES["techno"].bpm_range, ("minor",), 0.3, (4.0,),
                   (89, 90, 50), ("offbeat stabs", "sustained"), (38, 39),
                   ("root eighths", "octaves"), (81, 80), (81, 80), "techno", (24, 25)),
        MusicStyle("ambient", (60, 90), ("major", "minor"), 0.5, (4.0,),
                   (88, 89, 91, 94, 95, 48, 52), ("sustained", "half notes"), (38,),
                   ("roots",), (73, 75, 40), (8, 10, 46, 11, 108)),
        MusicStyle("cinematic", (70, 110), ("minor", "major"), 0.1, (4.0, 2.0),
                   (48, 49, 61, 60, 52), ("sustained", "half notes", "quarters"), (42,),
                   ("roots", "root fifth"), (60, 40, 73, 56), (46, 45, 0)),
        MusicStyle("classical", (66, 120), ("major", "minor"), 0.2, (4.0, 2.0),
                   (0, 6, 48), ("quarters", "half notes"), (42,), ("roots", "root fifth"),
                   (40, 68, 71, 73), (0, 6, 46)),
    )
}
