"""Drum kits, genre patterns and the numpy sequencer, on synthetic one-shots."""
from __future__ import annotations

import numpy as np
import pytest

from music.tempo import bpm_matches, estimate_bpm
from scripts.corpus.drumkits import (
    ROLES,
    DrumVoice,
    SampleLayer,
    parse_hydrogen_kit,
    role_from_instrument_name,
)
from scripts.corpus.patterns import (
    GENRES,
    PATTERN_BARS,
    DrumHit,
    DrumPattern,
    generate_pattern,
    steps_to_hits,
)
from scripts.corpus.sequencer import (
    TimedHit,
    choose_voices,
    render_drum_hits,
    render_drum_loop,
    swung_position_beats,
    timed_hits,
)
from tests.test_corpus_fixtures import synthetic_kit, write_one_shot

SAMPLE_RATE = 16000


@pytest.mark.parametrize("name, role", [
    ("Kick", "kick"), ("c3 - bass drum 1", "kick"), ("Snare Jazz", "snare"),
    ("Hand Clap", "clap"), ("Closed HH", "hat_closed"), ("Pedal HH", "hat_pedal"),
    ("Hi-Hat Open (Paiste Alpha Metal edge 14\")", "hat_open"), ("Hat 1 Pd", "hat_pedal"),
    ("Hat Op Dirty", "hat_open"), ("Ride Bell (Custom)", "ride_bell"), ("Ride Jazz", "ride"),
    ("Cowbell", "cowbell"), ("Floor Tom", "tom_low"), ("c4 - middle tom", "tom_mid"),
    ("Tom Hi", "tom_high"), ("Pearl Side Stick", "rim"), ("Snare Rimshot", None),
    ("Sabian Hat Choke", None), ("Sample: beats_01-10.flac", None), ("Zildjian Splash", "crash"),
])
def test_instrument_names_map_to_roles(name, role):
    assert role_from_instrument_name(name) == role


def test_hydrogen_kit_parsing_reads_layers_and_licence(tmp_path):
    kit_dir = tmp_path / "MyKit"
    kit_dir.mkdir()
    write_one_shot(kit_dir / "kick_soft.wav", "kick", 0.3)
    write_one_shot(kit_dir / "kick_hard.wav", "kick", 0.9)
    write_one_shot(kit_dir / "snare.wav", "snare")
    write_one_shot(kit_dir / "hat.wav", "hat")
    (kit_dir / "drumkit.xml").write_text("""<?xml version="1.0"?>
<drumkit_info xmlns="http://www.hydrogen-music.org/drumkit">
 <name>MyKit</name><author>Someone</author>
 <license>Creative Commons - Attribution-ShareAlike 3.0 Unported</license>
 <instrumentList>
  <instrument><name>Kick</name><volume>0.8</volume>
   <layer><filename>kick_soft.wav</filename><min>0</min><max>0.5</max><gain>1</gain></layer>
   <layer><filename>kick_hard.wav</filename><min>0.5</min><max>1</max><gain>1</gain></layer>
  </instrument>
  <instrument><name>Snare</name><filename>snare.wav</filename></instrument>
  <instrument><name>Closed HH</name><filename>hat.wav</filename></instrument>
  <instrument><name>Whistle</name><filename>hat.wav</filename></instrument>
  <instrument><name>Missing</name><filename>nope.wav</filename></instrument>
 </instrumentList>
</drumkit_info>""")
    kit = parse_hydrogen_kit(kit_dir)
    assert kit is not None and kit.is_playable()
    assert set(kit.voices) == {"kick", "snare", "hat_closed"}
    kick = kit.voices["kick"][0]
    assert kick.volume == pytest.approx(0.8)
    assert kick.layers_for_velocity(0.2)[0].path.endswith("kick_soft.wav")
    assert kick.layers_for_velocity(0.9)[0].path.endswith("kick_hard.wav")
    assert kit.license.license_class == "share-alike"


def test_velocity_outside_every_layer_takes_the_nearest():
    voice = DrumVoice("v", "snare", (SampleLayer("a", 0.2, 0.4), SampleLayer("b", 0.6, 0.8)))
    assert voice.layers_for_velocity(0.95)[0].path == "b"
    assert voice.layers_for_velocity(0.05)[0].path == "a"


def test_missing_roles_fall_back_to_stand_ins(tmp_path):
    kit = synthetic_kit(tmp_path)
    assert kit.resolve_role("kick") == ("kick", 1.0)
    assert kit.resolve_role("hat_pedal") == ("hat_closed", 0.6)
    assert kit.resolve_role("rim")[0] == "snare"
    assert kit.resolve_role("conga_high") is None


@pytest.mark.parametrize("genre", sorted(GENRES))
def test_every_genre_gives_a_valid_deterministic_pattern(genre):
    pattern = generate_pattern(genre, 1234)
    assert pattern == generate_pattern(genre, 1234)
    assert pattern.hits, genre
    assert all(0.0 <= hit.position_beats < PATTERN_BARS * 4 for hit in pattern.hits)
    assert all(0.0 < hit.velocity <= 1.0 for hit in pattern.hits)
    assert set(pattern.roles()) <= set(ROLES)
    low, high = GENRES[genre].swing_range
    assert low <= pattern.swing <= high
    positions = [(hit.role, hit.position_beats) for hit in pattern.hits]
    assert len(positions) == len(set(positions)), "duplicate hits"


def test_different_pattern_seeds_give_different_patterns():
    patterns = {generate_pattern("hip hop", seed).hits for seed in range(12)}
    assert len(patterns) > 6


def test_unknown_genre_is_rejected():
    with pytest.raises(ValueError, match="unknown genre"):
        generate_pattern("polka-step", 0)


def test_step_strings_become_beat_positions():
    hits = steps_to_hits("kick", "X...x...o.......", bar_offset=1)
    assert [(h.position_beats, h.velocity) for h in hits] == [(4.0, 1.0), (5.0, 0.78),
                                                              (6.0, 0.45)]


def test_swing_moves_only_offbeats():
    assert swung_position_beats(1.0, 0.66, 0.5) == pytest.approx(1.0)
    assert swung_position_beats(1.5, 0.5, 0.5) == pytest.approx(1.5)
    assert swung_position_beats(1.5, 2 / 3, 0.5) == pytest.approx(1 + 2 / 3)
    assert swung_position_beats(0.25, 0.6, 0.25) == pytest.approx(0.3)
    grid = np.arange(0, 8, 0.125)
    swung = [swung_position_beats(p, 0.62, 0.25) for p in grid]
    assert np.all(np.diff(swung) > 0), "swing must keep hits in order"


def test_timed_hits_follow_the_tempo_and_drop_hits_past_the_end():
    pattern = DrumPattern("house", 0, (DrumHit("kick", 0.0, 1.0), DrumHit("kick", 1.0, 1.0)),
                          swing=0.5, swing_unit_beats=0.25, humanise_seconds=0.0)
    hits = timed_hits(pattern, bpm=120.0, seconds_total=9.0, rng=np.random.default_rng(0))
    onsets = [hit.onset_seconds for hit in hits]
    # 16 beats a pattern at 0.5 s a beat: hits at 0, 0.5, then the loop restarts at 8 s.
    assert onsets == pytest.approx([0.0, 0.5, 8.0, 8.5])


def _onset_samples(audio: np.ndarray, threshold: float) -> list[int]:
    above = np.abs(audio) > threshold
    starts = np.flatnonzero(above[1:] & ~above[:-1]) + 1
    onsets = []
    for start in starts:
        if not onsets or start - onsets[-1] > 0.05 * SAMPLE_RATE:
            onsets.append(int(start))
    return onsets


def test_rendered_hits_land_on_their_sample_and_layer(tmp_path):
    kit = synthetic_kit(tmp_path)
    hits = [TimedHit("snare", 0.25, 0.3), TimedHit("snare", 1.0, 0.95)]
    voices = choose_voices(kit, ["snare"], np.random.default_rng(0))
    audio = render_drum_hits(hits, voices, 2.0, SAMPLE_RATE, np.random.default_rng(0))
    assert len(audio) == 2 * SAMPLE_RATE
    onsets = _onset_samples(audio, 0.01)
    assert onsets[0] == pytest.approx(0.25 * SAMPLE_RATE, abs=3)
    assert onsets[1] == pytest.approx(1.0 * SAMPLE_RATE, abs=3)
    soft_peak = np.abs(audio[:SAMPLE_RATE]).max()
    hard_peak = np.abs(audio[SAMPLE_RATE:]).max()
    # soft layer is 0.2 full scale at velocity 0.3, hard layer 0.9 at velocity 0.95
    assert hard_peak > 5 * soft_peak


def test_open_hat_is_choked_by_the_next_hat(tmp_path):
    kit = synthetic_kit(tmp_path)
    voices = choose_voices(kit, ["hat_open", "hat_closed"], np.random.default_rng(0))
    open_only = render_drum_hits([TimedHit("hat_open", 0.0, 1.0)], voices, 1.0, SAMPLE_RATE,
                                 np.random.default_rng(0))
    choked = render_drum_hits([TimedHit("hat_open", 0.0, 1.0), TimedHit("hat_closed", 0.2, 0.1)],
                              voices, 1.0, SAMPLE_RATE, np.random.default_rng(0))
    late = slice(int(0.3 * SAMPLE_RATE), int(0.45 * SAMPLE_RATE))
    assert np.abs(open_only[late]).max() > 0.01
    assert np.abs(choked[late]).max() == 0.0


def test_drum_loop_is_deterministic_and_names_what_sounds(tmp_path):
    kit = synthetic_kit(tmp_path)
    pattern = generate_pattern("house", 7)
    first, instruments = render_drum_loop(pattern, kit, 124, 4.0, SAMPLE_RATE,
                                          np.random.default_rng(3))
    again, _ = render_drum_loop(pattern, kit, 124, 4.0, SAMPLE_RATE, np.random.default_rng(3))
    other, _ = render_drum_loop(pattern, kit, 124, 4.0, SAMPLE_RATE, np.random.default_rng(4))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    assert "kick" in instruments
    assert len(first) == 4 * SAMPLE_RATE


@pytest.mark.parametrize("genre, bpm", [("house", 124), ("rock", 112), ("hip hop", 92)])
def test_rendered_loop_tempo_is_recovered_by_librosa(tmp_path, genre, bpm):
    kit = synthetic_kit(tmp_path, style="acoustic")
    pattern = generate_pattern(genre, 11)
    audio, _ = render_drum_loop(pattern, kit, bpm, 8.0, SAMPLE_RATE, np.random.default_rng(0))
    estimated = estimate_bpm(audio, SAMPLE_RATE)
    assert bpm_matches(estimated, bpm), (genre, bpm, estimated)
