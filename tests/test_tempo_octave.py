"""Tests for the tempo-octave choice of music/tempo.py (`octave_bpm`) on the synthetic drum
patterns of tests/test_loops.py: kicks on every beat, hi-hats off the beat."""
from __future__ import annotations

import pytest

from music import tempo
from tests.test_loops import SAMPLE_RATE, drum_pattern


@pytest.mark.parametrize("bpm", [70.0, 74.0, 166.0])
def test_slow_and_fast_kick_patterns_are_reported_at_their_own_tempo_octave(bpm):
    audio, _, _ = drum_pattern(bpm, seconds=12.0)
    assert tempo.estimate_bpm(audio, SAMPLE_RATE) == pytest.approx(bpm, rel=0.01)


@pytest.mark.parametrize("bpm", [70.0, 74.0, 166.0])
def test_octave_bpm_moves_a_wrong_octave_to_the_kicks(bpm):
    audio, _, _ = drum_pattern(bpm, seconds=12.0)
    wrong = bpm * 2 if bpm < 90 else bpm / 2
    assert tempo.octave_bpm(audio, SAMPLE_RATE, wrong) == pytest.approx(bpm)
    assert tempo.octave_bpm(audio, SAMPLE_RATE, bpm) == pytest.approx(bpm)


def test_octave_bpm_keeps_a_tempo_without_an_octave_in_the_range():
    audio, _, _ = drum_pattern(110.0, seconds=8.0)
    assert tempo.octave_bpm(audio, SAMPLE_RATE, 110.0) == 110.0


def _winner(bpm: float):
    """A stand-in for the learned candidate choice that always picks `bpm` (BPM) with a clear margin."""
    return lambda *args, **kwargs: [(bpm, 5.0), (bpm / 2, 0.0)]


def test_the_winning_candidate_sets_the_tempo_even_within_three_percent_of_the_grid(monkeypatch):
    # The grid fit alone reads these kicks at 120 BPM; a winner 2% away used to be dropped for the grid's own
    # tempo (any winner within 3% was), which kept chorales' soft-attack grid fits 2-4% off their tempogram peak.
    audio, _, _ = drum_pattern(120.0, seconds=8.0)
    monkeypatch.setattr(tempo, "tempo_candidates", _winner(122.4))
    result = tempo.estimate_tempo(audio, SAMPLE_RATE)
    assert result.bpm == pytest.approx(122.4, rel=0.006)  # CANDIDATE_REFIT_SEARCH and a little


def test_the_refit_around_a_right_candidate_keeps_the_attack_accurate_tempo(monkeypatch):
    # The candidate is a tempogram peak (within about 0.5%); the attacks still set the tempo to a fraction of that.
    audio, _, _ = drum_pattern(120.0, seconds=8.0)
    monkeypatch.setattr(tempo, "tempo_candidates", _winner(120.5))
    assert tempo.estimate_tempo(audio, SAMPLE_RATE).bpm == pytest.approx(120.0, rel=0.001)
