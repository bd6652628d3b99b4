"""Corpus sources from Debian / PyPI packages: each test skips, saying which package is
missing, where CI (requirements.txt + requirements-dev.txt only) lacks it."""
from __future__ import annotations

import importlib
import shutil

import numpy as np
import pytest

from music.audiofolder import read_rows
from scripts.corpus import breaks, drumkits, fluid
from scripts.corpus.licenses import NON_COMMERCIAL, PERMISSIVE, SHARE_ALIKE, UNKNOWN
from scripts.corpus.parts import TimedNote

SAMPLE_RATE = 16000


def _can_import(module_name: str) -> bool:
    """Whether a module imports (pyfluidsynth raises OSError without libfluidsynth)."""
    try:
        importlib.import_module(module_name)
    except (ImportError, OSError):
        return False
    return True


needs_hydrogen = pytest.mark.skipif(
    not any(path.is_dir() for path in drumkits.HYDROGEN_KIT_DIRS),
    reason="Hydrogen kits not installed (apt-get install hydrogen-drumkits hydrogen-data)")
needs_sonic_pi = pytest.mark.skipif(
    not breaks.loop_path(breaks.BREAK_LOOPS[0]).is_file(),
    reason="Sonic Pi samples not installed (apt-get install sonic-pi-samples)")
needs_soundfont = pytest.mark.skipif(
    fluid.find_soundfont() is None or not _can_import("fluidsynth"),
    reason="FluidSynth rendering needs fluid-soundfont-gm + fluidsynth (apt) and pyfluidsynth "
           "(pip install -r requirements-corpus.txt)")
needs_music21 = pytest.mark.skipif(
    not _can_import("music21"),
    reason="music21 not installed (pip install -r requirements-corpus.txt)")
needs_mma = pytest.mark.skipif(shutil.which("mma") is None,
                               reason="MMA not installed (apt-get install mma)")


@needs_hydrogen
def test_installed_hydrogen_kits_are_playable_and_classified():
    kits = drumkits.find_hydrogen_kits()
    assert len(kits) >= 10
    classes = {kit.kit_id: kit.license.license_class for kit in kits}
    assert UNKNOWN not in classes.values() and NON_COMMERCIAL not in classes.values()
    assert classes.get("hydrogen:Audiophob") == PERMISSIVE
    assert classes.get("hydrogen:rumpf_kit_z01_h2") == PERMISSIVE
    assert classes.get("hydrogen:GMRockKit") == SHARE_ALIKE
    assert classes.get("hydrogen:circAfrique v4") is None  # no kick/snare/hat roles


@needs_sonic_pi
def test_sonic_pi_kits_and_amen_break_tempo():
    kits = drumkits.sonic_pi_kits()
    assert {kit.kit_id for kit in kits} >= {"sonic-pi:acoustic", "sonic-pi:electronic"}
    amen = breaks.BREAK_LOOPS[0]
    assert breaks.native_bpm(amen) == pytest.approx(136.9, abs=0.2)
    audio, bpm = breaks.render_break(amen, 1.2, True, 3.0, SAMPLE_RATE,
                                     np.random.default_rng(0))
    assert bpm == pytest.approx(136.9 * 1.2, abs=0.3)
    assert len(audio) == 3 * SAMPLE_RATE and np.abs(audio).max() > 0.05


@needs_soundfont
def test_fluidsynth_renders_deterministically_and_drops_late_notes():
    renderer = fluid.FluidSynthRenderer(fluid.find_soundfont(), SAMPLE_RATE)
    notes = [TimedNote(0.25 * i, 0.25 * i + 0.2, 36 if i % 2 else 42, 100, 9) for i in range(8)]
    channels = {9: fluid.ChannelSetup(0, 128)}
    first = renderer.render(notes, channels, 1.5)
    other = renderer.render([TimedNote(0.0, 1.0, 60, 90, 0)], {0: fluid.ChannelSetup(0)}, 1.0)
    again = renderer.render(notes, channels, 1.5)
    assert len(first) == int(1.5 * SAMPLE_RATE) and np.abs(first).max() > 0.01
    assert np.abs(other).max() > 0.01
    assert np.array_equal(first, again), "a clip must not depend on the clip before it"
    late_only = renderer.render([TimedNote(2.0, 2.5, 60, 100, 0)], {0: fluid.ChannelSetup(0)},
                                1.0)
    assert np.abs(late_only).max() < 1e-5  # FluidSynth adds ~1e-8 anti-denormal noise


@needs_music21
def test_bach_chorales_only_and_parsed_in_four_voices():
    from scripts.corpus import chorales

    paths = chorales.list_chorales()
    assert len(paths) > 300
    assert all("/bach/" in path and "essenFolksong" not in path for path in paths)
    chorale = chorales.load_chorale(next(p for p in paths if p.endswith("bwv66.6.mxl")))
    assert len(chorale.voices) == 4
    assert chorale.key.name == "F# minor"
    soprano_mean = np.mean([pitch for _, _, pitch in chorale.voices[0]])
    bass_mean = np.mean([pitch for _, _, pitch in chorale.voices[-1]])
    assert soprano_mean > bass_mean + 12


@needs_mma
def test_mma_grooves_are_listed():
    from scripts.corpus import mma

    grooves = mma.list_grooves()
    assert len(grooves) > 500
    assert any(groove.name.lower() == "bossanova" for groove in grooves)
    chart = mma.chord_chart(grooves[0], 120, ["Am", "F"], 3)
    assert chart.splitlines()[:2] == ["Tempo 120.00", f"Groove {grooves[0].name}"]
    assert chart.splitlines()[-1] == "3 Am"


@needs_hydrogen
@needs_sonic_pi
@needs_soundfont
@needs_music21
def test_small_real_build(tmp_path):
    from scripts import build_corpus

    out_dir = tmp_path / "corpus"
    assert build_corpus.main(["--out", str(out_dir), "--max-clips", "16", "--jobs", "1",
                              "--skip-fidelity", "--num-clips", "400"]) == 0
    rows = read_rows(out_dir / "corpus.jsonl")
    assert len(rows) == 16
    assert {row["license_class"] for row in rows} == {PERMISSIVE}
    assert (out_dir / "ATTRIBUTION.md").is_file()
    info = (out_dir / "corpus_info.json").read_text()
    assert '"sample_rate": 16000' in info
