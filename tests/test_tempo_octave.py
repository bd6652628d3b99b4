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
