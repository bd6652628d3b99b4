"""The copy detector's shortlist (`CopyDetector._shortlist`) and the benchmark's duplicate-aware count.

The shortlist ranks every training clip by correlating transposition-invariant frames. copy-5 ranked by
the raw correlation, so a sparse clip (a few loud onsets in silence: its z-scored onset envelope
spikes) outranked a noisy copy's own source; copy-6 ranks by the cosine (the correlation over the
norms of the query piece and of the key frames under it)."""

import numpy as np
import pytest
import torch

from benchmarks.bench_memorization import FAMILIES, duplicate_groups, evaluate
from evaluation.copy_detection import CopyDetector, CopyMatch
from tests.test_evaluation_copy_verification import SR, kit, loop

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def sparse_clip(seed: int, hits: int, seconds: float = 5.0) -> np.ndarray:
    """A few drum hits at random times in silence, at random velocities (seeded)."""
    rng = np.random.default_rng(seed)
    sounds = kit(seed)
    out = np.zeros(int(seconds * SR), dtype=np.float32)
    for start_s in rng.uniform(0.2, seconds - 0.4, hits):
        start = int(start_s * SR)
        sound = sounds[int(rng.integers(3))] * rng.uniform(0.3, 1.0)
        out[start : start + len(sound)] += sound[: len(out) - start]
    return (0.3 * out / np.max(np.abs(out))).astype(np.float32)


@pytest.fixture(scope="module")
def noisy_copies():
    """12 training clips (3 loops, 9 sparse clips) and a 4 s copy of each under 15 dB white noise."""
    rng = np.random.default_rng(1)
    keys = [loop(kit(20 + i), 20 + i) for i in range(3)]
    keys += [sparse_clip(50 + i, int(rng.integers(2, 12))) for i in range(9)]
    queries = []
    for key in keys:
        window = key[SR // 3 : SR // 3 + 4 * SR].copy()
        noise = rng.normal(0, np.sqrt(np.mean(window**2)) * 10 ** (-15 / 20), len(window))
        queries.append((window + noise).astype(np.float32))
    return keys, queries


def shortlisted(detector: CopyDetector, keys: list[np.ndarray], queries: list[np.ndarray]) -> list[bool]:
    key_views = [detector._views(detector.features(k)) for k in keys]
    query_views = [detector._views(detector.features(q)) for q in queries]
    shortlists = detector._shortlist(query_views, key_views, exclude_self=False, progress=False)
    return [i in row for i, row in enumerate(shortlists)]


def test_the_cosine_shortlist_keeps_every_noisy_copys_source(noisy_copies):
    keys, queries = noisy_copies
    found = shortlisted(CopyDetector(shortlist=3, separate=False), keys, queries)
    assert all(found), f"sources missing from the shortlist of 3: {[i for i, f in enumerate(found) if not f]}"
    # the raw correlation (copy-5) lets the sparse clips' spikes crowd a source out
    assert not all(shortlisted(CopyDetector(shortlist=3, separate=False, shortlist_cosine=False), keys, queries))


def test_window_norms_are_the_norms_of_the_frames_under_each_lag():
    rng = np.random.default_rng(0)

    key = torch.from_numpy(rng.normal(size=(1, 2, 6)).astype(np.float32))
    half = torch.from_numpy(rng.normal(size=(1, 2, 3)).astype(np.float32))
    prefix = torch.nn.functional.pad((key**2).sum(1).double().cumsum(-1), (1, 0))
    lags = torch.arange(-2, 6)
    norms = CopyDetector._window_norms(half, torch.tensor([3]), prefix, torch.tensor([6]), lags)
    for j, lag in enumerate(lags.tolist()):
        frames = key[0, :, max(lag, 0) : max(0, min(lag + 3, 6))]
        expected = float(torch.sqrt((half**2).sum() * (frames**2).sum()))
        assert float(norms[0, 0, j]) == pytest.approx(max(expected, 1e-6), rel=1e-4, abs=1e-5)


def test_a_byte_identical_training_file_counts_as_the_source(tmp_path):
    payload = {"a": b"one", "b": b"two", "c": b"one"}
    paths = []
    for name, content in payload.items():
        path = tmp_path / f"{name}.flac"
        path.write_bytes(content)
        paths.append(path)
    groups = duplicate_groups(paths)
    assert groups == [{0, 2}, {1}, {0, 2}]

    def match(index: int, snr: np.ndarray) -> CopyMatch:
        n = len(snr)
        zeros, indices = np.zeros(n), np.full(n, index)
        return CopyMatch(score=zeros, index=indices, offset_s=zeros, semitones=zeros, tempo_ratio=zeros + 1,
                         gain_db=zeros, melody_score=zeros, melody_index=indices, melody_semitones=zeros,
                         part=np.array(["mix"] * n), residual_snr_db=np.asarray(snr, dtype=float),
                         verified_index=indices)

    calibration = match(1, np.linspace(0, 5, 100))
    base = {"calibration": calibration, "held_out": calibration}
    truths = [{"family": family, "source": 0, "semitones": 0.0, "tempo_ratio": 1.0, "gain_db": 0.0}
              for family in FAMILIES]
    # every copy of file 0 is matched, at 60 dB, to file 2: the same bytes
    _, per_family, _ = evaluate(match(2, np.full(len(FAMILIES), 60.0)), truths, base, 0.01, groups)
    assert per_family["offset"]["recall"] == 1.0
    _, per_family, _ = evaluate(match(2, np.full(len(FAMILIES), 60.0)), truths, base, 0.01)
    assert per_family["offset"]["recall"] == 0.0
