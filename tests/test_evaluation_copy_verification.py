"""The copy detector's verification stage (`evaluation/copy_verification.py`): a copy of a training
clip, even rotated, low-passed or under 15 dB noise, leaves a residual near what was added to it; a
near-twin (the same drum hits of the same kit a few ms apart, at other velocities: what the demo
corpus's held-out splits hold) leaves most of itself, although its magnitudes match as well as a
copy's. Calibrated with the search's scores, the residual SNR flags copies that the copy score
alone cannot tell from twins."""

import numpy as np
import pytest
from scipy import signal

from evaluation.copy_detection import CopyDetector
from evaluation.copy_verification import CopyVerifier, steady_snr_db
from evaluation.memorization import calibrate_thresholds, flag_copies

SR = 16000
BEAT_S = 0.5  # 120 BPM

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def kit(seed: int) -> list[np.ndarray]:
    """Three drum sounds (decaying noise bursts through three filters), fixed per seed."""
    rng = np.random.default_rng(seed)
    sounds = []
    for low, high, decay in ((40, 200, 0.15), (300, 3000, 0.08), (5000, 7900, 0.03)):
        t = np.arange(int(0.3 * SR)) / SR
        sos = signal.butter(2, [low, high], btype="band", fs=SR, output="sos")
        sounds.append(signal.sosfilt(sos, rng.normal(0, 1, len(t)) * np.exp(-t / decay)).astype(np.float32))
    return sounds


def loop(sounds: list[np.ndarray], seed: int, seconds: float = 5.0, jitter_ms: float = 6.0) -> np.ndarray:
    """A drum loop on a fixed eighth-note pattern: kick on beats, snare on 2 and 4, hats on eighths;
    each hit jittered by up to `jitter_ms` and at a random velocity (seeded: a twin is another seed)."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * SR) + SR, dtype=np.float32)
    for step in range(int(seconds / BEAT_S * 2)):
        drums = [2] + ([0] if step % 2 == 0 else []) + ([1] if step % 4 == 2 else [])
        for drum in drums:
            start = int((step * BEAT_S / 2 + rng.uniform(-1, 1) * jitter_ms / 1000) * SR) + SR // 100
            sound = sounds[drum] * rng.uniform(0.6, 1.0)
            out[max(start, 0) : start + len(sound)] += sound[: len(out) - max(start, 0)]
    out = out[: int(seconds * SR)]
    return (0.3 * out / np.max(np.abs(out))).astype(np.float32)


@pytest.fixture(scope="module")
def clips():
    sounds = kit(0)
    source, twin = loop(sounds, 1), loop(sounds, 2)
    rng = np.random.default_rng(3)
    window = source[SR // 3 : SR // 3 + 4 * SR]
    noise = rng.normal(0, np.sqrt(np.mean(window**2)) * 10 ** (-15 / 20), len(window)).astype(np.float32)
    lowpass = signal.butter(4, 3000, btype="low", fs=SR, output="sos")
    copies = {
        "offset": window,
        "noise": window + noise,
        "rotation": np.roll(window, -int(1.3 * SR)),
        "gain + low-pass": 0.5 * signal.sosfilt(lowpass, window).astype(np.float32),
    }
    return source, twin, copies


def test_a_copy_leaves_a_residual_near_what_was_added_to_it(clips):
    source, _, copies = clips
    verifier = CopyVerifier()
    snr = {name: verifier.residual_snr_db(copy, source)["waveform"] for name, copy in copies.items()}
    assert snr["noise"] == pytest.approx(15.0, abs=2.0), snr  # the noise added, no more
    assert min(snr[name] for name in ("offset", "rotation", "gain + low-pass")) > 30, snr


def test_a_near_twin_is_other_audio_although_its_magnitudes_match(clips):
    source, twin, copies = clips
    verifier = CopyVerifier()
    query = twin[SR // 3 : SR // 3 + 4 * SR]
    twin_snr = verifier.residual_snr_db(query, source)
    noise_snr = verifier.residual_snr_db(copies["noise"], source)
    assert twin_snr["waveform"] < 6, twin_snr
    assert twin_snr["waveform"] < noise_snr["waveform"] - 8
    # the magnitudes, blind to a few ms, cannot tell the twin from the copy under noise
    assert twin_snr["magnitude"] > noise_snr["magnitude"] - 6, (twin_snr, noise_snr)


def test_audio_shared_in_one_stretch_is_not_a_steady_residual(clips):
    # a clip whose first 1.5 s are the training clip's (12 dB louder) and the rest other audio: the
    # shared stretch dominates the whole clip's energy, so its whole-clip SNR is as high as a noisy
    # copy's, but the other segments are unexplained; a copy under 15 dB noise leaves ~15 dB in
    # every segment
    source, _, copies = clips
    verifier = CopyVerifier()
    window = source[SR // 3 : SR // 3 + 4 * SR]
    shared = loop(kit(9), 11)[: 4 * SR].copy()
    shared[: int(1.5 * SR)] = 4 * window[: int(1.5 * SR)]
    partly = verifier.residual_snr_db(shared, source)
    noisy = verifier.residual_snr_db(copies["noise"], source)
    assert partly["waveform"] > 8, partly["waveform"]  # the whole clip's SNR barely tells it from a copy
    assert partly["steady"] < 3, partly["steady"]
    assert noisy["steady"] == pytest.approx(15.0, abs=2.5), noisy["steady"]
    assert noisy["steady"] <= noisy["waveform"]


def test_steady_snr_is_the_median_segment_and_never_above_the_whole_clip():
    segments = np.array([[40.0, 25.0], [40.0, 10.0], [41.0, 11.0], [-30.0, -90.0], [np.nan, np.nan]])
    # the -30 dB segment is more than 40 dB under the loudest: left out; median of 15, 30, 30 dB
    assert steady_snr_db(segments, 50.0) == pytest.approx(30.0)
    assert steady_snr_db(segments, 20.0) == pytest.approx(20.0)
    assert steady_snr_db(None, 12.0) == 12.0


def test_the_transform_is_undone_before_the_residual():
    sounds = kit(5)
    source = loop(sounds, 6, seconds=6.0)
    verifier = CopyVerifier()
    faster = verifier.transformed_key(source, 0.0, 1.06)[: 4 * SR]  # how a copy 6% faster was made
    assert verifier.residual_snr_db(faster, source, 0.0, 1.06)["waveform"] > 30
    assert verifier.residual_snr_db(faster, source, 0.0, 1.0)["waveform"] < 10


def test_verification_flags_copies_that_the_copy_score_cannot_tell_from_twins():
    detector = CopyDetector(separate=False, verify_candidates=3, compare_taps=(0,))
    sounds = kit(0)
    train = [loop(sounds, seed) for seed in range(8)]
    twins = [loop(sounds, 100 + seed)[SR // 4 : SR // 4 + 4 * SR] for seed in range(20)]  # held-out
    rng = np.random.default_rng(7)
    copies = []
    for source in (1, 4, 6):
        window = train[source][SR // 2 : SR // 2 + 4 * SR]
        noise = rng.normal(0, np.sqrt(np.mean(window**2)) * 10 ** (-15 / 20), len(window))
        copies.append((window + noise).astype(np.float32))
    train_features = [detector.features(x) for x in train]

    def matched(queries):
        found = detector.match([detector.features(x) for x in queries], train_features, progress=False)
        return detector.verify(queries, found, lambda i: train[i], progress=False)

    calibration, found = matched(twins), matched(copies)
    thresholds = calibrate_thresholds(calibration, 0.05)
    assert set(thresholds) == {"copy_score", "melody_score", "residual_snr_db"}
    assert np.mean(flag_copies(calibration, thresholds)) <= 0.05
    assert list(found.verified_index) == [1, 4, 6]
    # the decision's fit (33 taps) and the comparison's (per bin) both kept, each with its clip
    assert set(found.residual_by_fit) == {33, 0}
    assert np.array_equal(found.residual_by_fit[33], found.residual_snr_db)
    assert np.all(found.steady_residual_snr_db <= found.residual_snr_db)  # reported beside it
    assert list(found.verified_index_by_fit[0]) == [1, 4, 6]
    assert np.all(found.residual_snr_db > thresholds["residual_snr_db"]), (found.residual_snr_db, thresholds)
    assert np.all(flag_copies(found, thresholds))
    # the search's own score does not separate them: twins of the same template score as high
    assert np.max(calibration.score) > np.min(found.score)


def chord(seed: int, seconds: float = 4.5) -> np.ndarray:
    """A sustained A minor triad, 8 harmonics per note, every partial at a random (seeded) phase:
    another seed is another rendition of the same chord, as a held-out pad of the same template."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    out = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 2 * np.pi)) / k
              for f0 in (110.0, 138.6, 164.8) for k in range(1, 9))
    return (0.1 * out / np.max(np.abs(out))).astype(np.float32)


def test_a_short_filter_does_not_explain_another_rendition_of_a_sustained_chord():
    # one complex gain per bin (copy-4) sets every partial's phase: another rendition of the same
    # chord was explained at ~10 dB; a 33-tap filter cannot, while a low-passed copy still fits
    source, rendition = chord(1), chord(2)
    lowpass = signal.butter(4, 3000, btype="low", fs=SR, output="sos")
    copy = 0.5 * signal.sosfilt(lowpass, source[SR // 4 : SR // 4 + 4 * SR]).astype(np.float32)
    verifier = CopyVerifier(compare_taps=(0,))
    other = verifier.residual_snr_db(rendition[: 4 * SR], source)
    assert other["fits"][0] > 8, other  # the per-bin fit, copy-4's decision
    assert other["waveform"] < 5, other
    assert verifier.residual_snr_db(copy, source)["waveform"] > 40


def test_filter_taps_must_not_be_negative():
    with pytest.raises(ValueError, match="filter_taps"):
        CopyVerifier(filter_taps=-1)
