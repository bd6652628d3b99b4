"""Licences, captions, music theory, MIDI parts, splits and planning of the corpus."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from music.key import Key, all_keys, parse_key
from scripts.corpus import captions
from scripts.corpus.licenses import (
    GENERATED_MATERIAL,
    NON_COMMERCIAL,
    PERMISSIVE,
    SHARE_ALIKE,
    UNKNOWN,
    classify_license_text,
    combine_licenses,
    debian_cc0_files,
    hydrogen_kit_license,
    is_allowed,
)
from scripts.corpus.parts import (
    GM_DRUM_NOTES,
    arpeggio_part,
    bass_part,
    chord_part,
    gm_drum_part,
    melody_part,
    to_timed_notes,
)
from scripts.corpus.patterns import generate_pattern
from scripts.corpus.plan import (
    DurationPolicy,
    SourceCatalog,
    plan_corpus,
    sample_for_quick_run,
    subset_counts,
)
from scripts.corpus.splits import SPLIT_NAMES, assign_group_splits, leaked_groups
from scripts.corpus.theory import chord_on_degree, voice_chord
from tests.test_corpus_fixtures import SYNTHETIC_LICENSE, SYNTHETIC_SA_LICENSE, synthetic_kit


@pytest.mark.parametrize("text, expected", [
    ("This work is licensed under the Creative Commons 0 License.", PERMISSIVE),
    ("cc-by ==> http://creativecommons.org/licenses/by/3.0/", PERMISSIVE),
    ("MIT", PERMISSIVE),
    ("GPL", SHARE_ALIKE),
    ("This drumkit is distributed under the GPL version 2 license", SHARE_ALIKE),
    ("Attribution-Share Alike 3.0 United States", SHARE_ALIKE),
    ("CC BY-NC-SA 4.0", NON_COMMERCIAL),
    ("Creative Commons Attribution-NonCommercial", NON_COMMERCIAL),
    ("", UNKNOWN),
    ("all rights reserved", UNKNOWN),
])
def test_licence_texts_are_classified(text, expected):
    assert classify_license_text(text) == expected


def test_only_permissive_by_default_and_never_non_commercial():
    assert is_allowed(PERMISSIVE, include_share_alike=False)
    assert not is_allowed(SHARE_ALIKE, include_share_alike=False)
    assert is_allowed(SHARE_ALIKE, include_share_alike=True)
    assert not is_allowed(NON_COMMERCIAL, include_share_alike=True)
    assert not is_allowed(UNKNOWN, include_share_alike=True)


def test_clip_licence_is_the_most_restrictive_of_its_sources():
    expression, license_class = combine_licenses([SYNTHETIC_LICENSE, GENERATED_MATERIAL])
    assert (expression, license_class) == ("CC0-1.0", PERMISSIVE)
    expression, license_class = combine_licenses([SYNTHETIC_LICENSE, SYNTHETIC_SA_LICENSE])
    assert expression == "CC0-1.0 AND GPL-2.0-only"
    assert license_class == SHARE_ALIKE


def test_hydrogen_kit_licences_use_the_curated_table_then_the_xml():
    assert hydrogen_kit_license("Audiophob", "", "x").license_class == PERMISSIVE
    assert hydrogen_kit_license("GMRockKit", "GPL", "x").license_class == SHARE_ALIKE
    assert hydrogen_kit_license("ColomboAcousticDrumkit", "", "x").license_class == PERMISSIVE
    assert hydrogen_kit_license("NewKit", "CC BY-NC 4.0", "x").license_class == NON_COMMERCIAL
    assert hydrogen_kit_license("OtherKit", "", "x").license_class == UNKNOWN


def test_debian_copyright_cc0_files_are_read_per_paragraph(tmp_path):
    copyright_file = tmp_path / "copyright"
    copyright_file.write_text(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        "Files: *\nCopyright: 2016 X\nLicense: MIT\n\n"
        "Files: etc/samples/loop_amen.flac\nCopyright: 2007 Dolfeus\nLicense: CC0\n\n"
        "Files:\n etc/samples/a.flac\n etc/samples/b.flac\nCopyright: Y\nLicense: CC0\n\n"
        "Files: etc/examples/*\nCopyright: Z\nLicense: CC-BY-SA-4.0\n")
    assert debian_cc0_files(copyright_file) == {"loop_amen.flac", "a.flac", "b.flac"}
    assert debian_cc0_files(tmp_path / "missing") == set()


def test_captions_name_genre_tempo_key_and_instruments():
    for seed in range(10):
        rng = np.random.default_rng(seed)
        text = captions.drum_loop_caption("hip hop", 92, "acoustic kit",
                                          ["kick", "snare", "closed hi-hat"], rng)
        assert "hip hop" in text and "92 BPM" in text
        assert "acoustic kit" in text or "closed hi-hat" in text
        text = captions.part_caption("chords", "jazz", 140.4, "Bb major", "electric piano",
                                     ["Cm7", "F7", "Bbmaj7"], rng)
        assert "jazz" in text and "140 BPM" in text and "Bb major" in text
        assert "electric piano" in text
        text = captions.band_caption("funk", 104, "E minor", ["drums", "slap bass"], rng)
        assert all(part in text for part in ("funk", "104 BPM", "E minor", "slap bass"))
        text = captions.break_caption("amen break", "jungle", 168.2, "chopped", rng)
        assert "amen break" in text and "168 BPM" in text and "jungle" in text


def test_bass_captions_do_not_stutter():
    for seed in range(10):
        text = captions.part_caption("bass line", "funk", 100, "E minor", "slap bass", ["Em"],
                                     np.random.default_rng(seed))
        assert "bass bass" not in text


def test_names_are_joined_in_plain_english():
    assert captions.join_names(["kick"]) == "kick"
    assert captions.join_names(["kick", "snare"]) == "kick and snare"
    assert captions.join_names(["a", "b", "c"]) == "a, b and c"


def test_diatonic_chords_and_names():
    c_major = Key(0, "major")
    assert chord_on_degree(c_major, 1).name == "C"
    assert chord_on_degree(c_major, 6).name == "Am"
    assert chord_on_degree(c_major, 5, seventh=True).name == "G7"
    assert chord_on_degree(c_major, 7).name == "Bdim"
    assert chord_on_degree(c_major, 2, seventh=True).name == "Dm7"
    assert chord_on_degree(Key(9, "minor"), 5).name == "E"  # harmonic minor dominant
    assert parse_key("F# minor") == Key(6, "minor")
    assert Key(11, "major").transposed(2).flat_name == "Db major"


# The corpus captions' spelling before `music.key.Key` became the one Key (scripts/corpus/theory.py had its own).
CAPTION_PITCH_CLASSES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
APP_PITCH_CLASSES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def test_one_key_class_keeps_both_spellings_for_all_24_keys():
    keys = all_keys()
    assert len(set(keys)) == 24
    for key in keys:
        assert key.flat_name == f"{CAPTION_PITCH_CLASSES[key.tonic]} {key.mode}"
        assert key.name == f"{APP_PITCH_CLASSES[key.tonic]} {key.mode}"
        assert parse_key(key.flat_name) == key == parse_key(key.name)


def test_close_voicing_stays_near_its_center():
    pitches = voice_chord(chord_on_degree(Key(0, "major"), 1), 60)
    assert sorted(p % 12 for p in pitches) == [0, 4, 7]
    assert all(abs(p - 60) <= 6 for p in pitches)


def test_parts_follow_the_chords_and_cover_the_length():
    rng = np.random.default_rng(0)
    key = Key(9, "minor")
    chords = [chord_on_degree(key, degree) for degree in (1, 6, 3, 7)]
    bass = bass_part(chords, 4.0, 16.0, "roots", 1, rng)
    assert [note.pitch % 12 for note in bass] == [chord.root for chord in chords]
    comp = chord_part(chords, 4.0, 16.0, "quarters", 60, 2, rng)
    assert max(note.start_beats for note in comp) < 16.0
    assert {note.pitch % 12 for note in comp if note.start_beats < 4} == {9, 0, 4}
    arp = arpeggio_part(chords, 4.0, 8.0, 0.5, "up", 1, 66, 0, rng)
    assert len(arp) == 16
    melody = melody_part(key, chords, 4.0, 16.0, 3, rng)
    scale = set(key.scale())
    assert melody and all(note.pitch % 12 in scale or note.start_beats % 4 == 0
                          for note in melody)
    for style in ("root eighths", "root fifth", "octaves", "syncopated", "walking",
                  "one drop", "long glide"):
        assert bass_part(chords, 4.0, 8.0, style, 1, rng)


def test_gm_drums_and_timing_in_seconds():
    pattern = generate_pattern("rock", 5)
    events = gm_drum_part(pattern, 32.0)
    assert {event.pitch for event in events} <= set(GM_DRUM_NOTES.values())
    assert all(event.channel == 9 for event in events)
    assert len(events) == 2 * len(pattern.hits)
    notes = to_timed_notes(events[:4], bpm=120, swing=0.5, swing_unit_beats=0.25,
                           humanise_seconds=0.0, rng=np.random.default_rng(0))
    for note, event in zip(notes, sorted(events[:4], key=lambda e: e.start_beats)):
        assert note.onset_seconds == pytest.approx(event.start_beats * 0.5)


def test_group_splits_are_deterministic_complete_and_non_empty():
    groups = [f"pattern:{i}" for i in range(50)]
    first = assign_group_splits(groups, seed=1, family="kit_loop")
    assert first == assign_group_splits(list(reversed(groups)), seed=1, family="kit_loop")
    assert set(first) == set(groups)
    counts = {split: list(first.values()).count(split) for split in SPLIT_NAMES}
    assert counts == {"train": 40, "valid": 5, "test": 5}
    few = assign_group_splits(["amen", "tabla", "mika"], seed=0, family="break")
    assert sorted(few.values()) == ["test", "train", "valid"]
    assert assign_group_splits(groups, seed=2, family="kit_loop") != first


def test_leaks_between_splits_are_detected():
    rows = [{"split": "train", "group": "a", "piece": "x"},
            {"split": "test", "group": "b", "piece": "x"},
            {"split": "test", "group": "b"}]
    assert leaked_groups(rows, ("group", "piece")) == {"piece": {"x"}}


def _synthetic_catalog(tmp_path: Path) -> SourceCatalog:
    kits = [synthetic_kit(tmp_path / "k1", "test:electronic", "electronic"),
            synthetic_kit(tmp_path / "k2", "test:acoustic", "acoustic")]
    return SourceCatalog(kits=kits, loops=[], soundfont=tmp_path / "fake.sf2",
                         chorale_paths=[f"/fake/bach/bwv{i}.6.mxl" for i in range(1, 40)],
                         grooves=[], sonic_pi_files=set(), include_share_alike=False)


def test_plan_is_deterministic_sized_and_leak_free(tmp_path):
    catalog = _synthetic_catalog(tmp_path)
    subsets = ("drums", "melodic", "band", "classical")
    durations = DurationPolicy()
    specs = plan_corpus(catalog, 400, 3, subsets, durations)
    again = plan_corpus(catalog, 400, 3, subsets, durations)
    assert [s.to_dict() for s in specs] == [s.to_dict() for s in again]
    counts = subset_counts(400, subsets)
    by_subset = {name: sum(s.subset == name for s in specs) for name in subsets}
    assert by_subset["melodic"] == counts["melodic"]
    assert by_subset["band"] == counts["band"]
    assert by_subset["classical"] == counts["classical"]
    # no loops installed: the drum subset has kit and GM loops only
    assert by_subset["drums"] <= counts["drums"]
    assert len({s.clip_id for s in specs}) == len(specs)
    rows = [{"split": s.split, "group": s.group,
             "pattern_seed": s.params.get("pattern_seed")} for s in specs]
    assert leaked_groups(rows, ("group", "pattern_seed")) == {}
    assert {s.split for s in specs} == set(SPLIT_NAMES)
    seconds = [s.seconds_total for s in specs]
    fixed_share = np.mean([value == 5.0 for value in seconds])
    assert 0.6 < fixed_share < 0.9
    assert min(seconds) >= 2.0 and max(seconds) <= 12.0
    for spec in specs:
        if spec.kind in ("part", "band"):
            assert re.fullmatch(r"[A-G][b#]? (major|minor)", spec.key)


def test_kits_match_genres_and_quick_runs_sample_the_full_plan(tmp_path):
    catalog = _synthetic_catalog(tmp_path)
    specs = plan_corpus(catalog, 300, 0, ("drums",), DurationPolicy())
    for spec in specs:
        if spec.kind == "kit_loop" and spec.genre in ("techno", "trap", "rock", "jazz swing"):
            expected = "test:acoustic" if spec.genre in ("rock", "jazz swing") else \
                "test:electronic"
            assert spec.params["kit_id"] == expected
    quick = sample_for_quick_run(specs, 40, seed=0)
    assert len(quick) == 40
    assert {spec.split for spec in quick} == set(SPLIT_NAMES)
    assert {spec.split for spec in sample_for_quick_run(specs, 3, seed=5)} == set(SPLIT_NAMES)
    full_by_id = {s.clip_id: s.to_dict() for s in specs}
    assert all(full_by_id[s.clip_id] == s.to_dict() for s in quick)
    assert sample_for_quick_run(specs, None, 0) == specs


def test_unknown_subset_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown subsets"):
        plan_corpus(_synthetic_catalog(tmp_path), 10, 0, ("noise",), DurationPolicy())


def test_articles_agree_with_the_kit():
    texts = {captions.drum_loop_caption("rock", 100, "acoustic kit", ["kick"],
                                        np.random.default_rng(seed)) for seed in range(40)}
    assert any("an acoustic kit" in text for text in texts)
    assert not any("a acoustic" in text for text in texts)
    assert captions.with_article("808 kit") == "an 808 kit"


def test_mma_library_files_get_readable_genres():
    from scripts.corpus.mma import genre_of_stem

    assert genre_of_stem("bossanova") == "bossa nova"
    assert genre_of_stem("jazzwaltz") == "jazz waltz"
    assert genre_of_stem("slowcountry") == "slow country"
    assert genre_of_stem("rock-128") == "rock"
    assert genre_of_stem("polka") == "polka"


def test_chorale_captions_do_not_repeat_the_ensemble():
    for seed in range(12):
        rng = np.random.default_rng(seed)
        text = captions.chorale_caption("BWV 66.6", "choir", ["choir"], "F# minor", 84, rng)
        assert "choir: choir" not in text and "84 BPM" in text and "F# minor" in text
        text = captions.chorale_caption("BWV 66.6", "string quartet",
                                        ["violin", "viola", "cello"], "F# minor", 84, rng)
        assert "string quartet" in text
