"""Text captions for corpus clips: seeded phrasings that always name the genre, the tempo as
"<n> BPM", the instruments and, for pitched music, the key (e.g. "A minor").

Several templates per kind keep a text encoder from keying on one sentence shape; every
template carries the same facts, so a caption can be checked against the metadata.
"""
from __future__ import annotations

import numpy as np


def join_names(names: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    names = [name for name in names if name]
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def with_article(noun_phrase: str) -> str:
    """"a rock kit", "an acoustic kit", "an 808 kit" (spoken "eight-oh-eight")."""
    article = "an" if noun_phrase[:1].lower() in "aeiou8" else "a"
    return f"{article} {noun_phrase}"


def format_bpm(bpm: float) -> str:
    """Tempo as captions write it: "92 BPM" (rounded to a whole BPM)."""
    return f"{round(bpm)} BPM"


def _pick(templates: tuple[str, ...], rng: np.random.Generator) -> str:
    return templates[int(rng.integers(len(templates)))]


_DRUM_LOOP_TEMPLATES = (
    "{genre} drum loop, {bpm}, {kit}",
    "{genre} beat at {bpm} on {kit_with_article}: {instruments}",
    "{bpm} {genre} drums with {instruments}",
    "{kit} playing a {genre} groove, {bpm}, {instruments}",
    "drum loop, {genre}, {bpm}, {kit} with {instruments}",
)


def drum_loop_caption(genre: str, bpm: float, kit_description: str, instruments: list[str],
                      rng: np.random.Generator) -> str:
    """Caption of a sequenced drum loop, e.g. "hip hop drum loop, 92 BPM, acoustic kit"."""
    return _pick(_DRUM_LOOP_TEMPLATES, rng).format(
        genre=genre, bpm=format_bpm(bpm), kit=kit_description,
        kit_with_article=with_article(kit_description), instruments=join_names(instruments))


_BREAK_TEMPLATES = (
    "{description}, {genre}, {bpm}{edit}",
    "{genre} {description} at {bpm}{edit}",
    "{bpm} {genre} loop: {description}{edit}",
)


def break_caption(description: str, genre: str, bpm: float, edit: str,
                  rng: np.random.Generator) -> str:
    """Caption of a sampled loop, e.g. "amen break, jungle, 168 BPM, chopped and re-sequenced".

    Args:
        description: what the loop is ("amen break", "tabla loop").
        edit: how it was edited ("", "chopped and re-sequenced", "sped up").
    """
    edit_text = f", {edit}" if edit else ""
    return _pick(_BREAK_TEMPLATES, rng).format(
        description=description, genre=genre, bpm=format_bpm(bpm), edit=edit_text)


_PART_TEMPLATES = {
    "chords": (
        "{instrument} chords in {key}, {bpm}, {genre}",
        "{genre} {instrument} chord progression {chords} in {key} at {bpm}",
        "{bpm} {genre} chords on {instrument}, key of {key}",
    ),
    "arpeggio": (
        "{instrument} arpeggio in {key}, {bpm}, {genre}",
        "{genre} arpeggiated {instrument} over {chords}, {key}, {bpm}",
        "{bpm} {instrument} arpeggios, {genre}, {key}",
    ),
    "melody": (
        "{instrument} melody over {backing}, {genre}, {key}, {bpm}",
        "{genre} {instrument} lead in {key} at {bpm} with {backing}",
        "{bpm} {genre} melody on {instrument}, {key}, backed by {backing}",
    ),
    "bass line": (
        "{instrument} bass line, {genre}, {key}, {bpm}",
        "{genre} {instrument} groove in {key} at {bpm}",
        "{bpm} {genre} bass on {instrument}, {key}",
    ),
}


def part_caption(part: str, genre: str, bpm: float, key: str, instrument: str,
                 chords: list[str], rng: np.random.Generator, backing: str = "") -> str:
    """Caption of a soundfont-rendered part (`chords`, `arpeggio`, `melody`, `bass line`).

    >>> part_caption("bass line", "funk", 104, "E minor", "slap bass", ["Em7"],
    ...              np.random.default_rng(0))
    'slap bass bass line, funk, E minor, 104 BPM'
    """
    template = _pick(_PART_TEMPLATES[part], rng)
    if part == "bass line" and instrument.endswith("bass") and template.startswith("{instrument}"):
        template = template.replace("{instrument} bass line", "{instrument} line")
    return template.format(instrument=instrument, key=key, bpm=format_bpm(bpm), genre=genre,
                           chords=" ".join(chords), backing=backing)


_BAND_TEMPLATES = (
    "{genre} band in {key}, {bpm}: {instruments}",
    "{bpm} {genre} groove in {key} with {instruments}",
    "{genre} track, {key}, {bpm}, {instruments}",
)


def band_caption(genre: str, bpm: float, key: str, instruments: list[str],
                 rng: np.random.Generator) -> str:
    """Caption of a full-band clip, e.g. "funk band in E minor, 104 BPM: drums, slap bass..."."""
    return _pick(_BAND_TEMPLATES, rng).format(
        genre=genre, bpm=format_bpm(bpm), key=key, instruments=join_names(instruments))


_CHORALE_TEMPLATES = (
    "Bach chorale {title} for {ensemble}, {key}, {bpm}",
    "baroque four-part chorale on {ensemble} in {key} at {bpm}, {title}",
    "{bpm} classical chorale, {ensemble}: {instruments}, {key}",
)


def chorale_caption(title: str, ensemble: str, instruments: list[str], key: str, bpm: float,
                    rng: np.random.Generator) -> str:
    """Caption of a rendered Bach chorale excerpt."""
    template = _pick(_CHORALE_TEMPLATES, rng)
    if join_names(instruments) in ensemble:  # "choir: choir" says nothing twice
        template = template.replace(": {instruments}", "")
    return template.format(
        title=title, ensemble=ensemble, instruments=join_names(instruments), key=key,
        bpm=format_bpm(bpm))
