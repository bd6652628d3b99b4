"""Metric core of `evaluation/`: Frechet distance vs scipy, FAD floor and planted degradations,
FAD-inf, KAD, bootstrap intervals, the paired test and the torchmetrics classes."""

import itertools
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch

from evaluation.bootstrap import bootstrap_ci, paired_bootstrap_test
from evaluation.embedders import get_embedder
from evaluation.fad import (
    FADMetric,
    fad,
    fad_inf,
    frechet_distance,
    gaussian_stats,
    per_clip_scores,
)
from evaluation.kad import KADMetric, kad, kernel_stats, median_bandwidth
from evaluation.synthetic import add_noise, hard_clip, low_pass, synthetic_clip

SR = 16000


pytestmark = pytest.mark.usefixtures("one_torch_thread")

def scipy_frechet(mu1, s1, mu2, s2) -> float:
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float(
        ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean.real)
    )


@pytest.mark.parametrize("dim", [4, 32, 128])
def test_frechet_matches_scipy_sqrtm_within_1e6_relative(dim):
    rng = np.random.default_rng(dim)
    a = rng.normal(size=(400, dim))
    b = rng.normal(size=(400, dim)) @ rng.normal(size=(dim, dim)) * 0.5 + 0.3
    stats_a, stats_b = gaussian_stats(a), gaussian_stats(b)
    ours = frechet_distance(stats_a.mean, stats_a.covariance, stats_b.mean, stats_b.covariance)
    reference = scipy_frechet(stats_a.mean, stats_a.covariance, stats_b.mean, stats_b.covariance)
    assert abs(ours - reference) / reference < 1e-6


def test_frechet_is_real_and_finite_for_singular_covariances():
    rng = np.random.default_rng(0)
    low_rank = rng.normal(size=(5, 64)) @ rng.normal(size=(64, 64))  # rank 5 covariance
    with pytest.warns(UserWarning, match="rank-deficient"):
        value = fad(low_rank, rng.normal(size=(6, 64)))
    assert np.isfinite(value) and value > 0
    assert frechet_distance(np.zeros(3), np.zeros((3, 3)), np.zeros(3), np.zeros((3, 3))) == 0.0


def test_fad_refuses_fewer_than_two_clips_and_nan():
    with pytest.raises(ValueError, match="at least 2"):
        fad(np.ones((1, 4)), np.ones((5, 4)))
    bad = np.random.default_rng(0).normal(size=(5, 4))
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fad(np.random.default_rng(1).normal(size=(5, 4)), bad)


@pytest.fixture(scope="module")
def degradation_embeddings():
    embedder = get_embedder("mel-stats")
    clips = [synthetic_clip(seed, 3.0, SR) for seed in range(120)]
    reference, real = clips[:60], clips[60:]

    def embed(waves):
        return embedder.embed_audio(waves, SR).numpy()

    out = {"reference": embed(reference), "real": embed(real)}
    for snr in (30, 20, 10, 0):
        out[f"noise{snr}"] = embed([add_noise(x, snr, seed=i) for i, x in enumerate(real)])
    for cutoff in (6000, 3000, 1000):
        out[f"lowpass{cutoff}"] = embed([low_pass(x, cutoff, SR) for x in real])
    for threshold in (0.5, 0.2, 0.05):
        out[f"clip{threshold}"] = embed([hard_clip(x, threshold) for x in real])
    return out


def test_fad_of_real_split_is_the_floor_and_rises_monotonically_with_degradation(
    degradation_embeddings,
):
    e = degradation_embeddings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 60 clips < 168 dims: rank warning expected here
        floor = fad(e["reference"], e["real"])
        for family in (
            ["noise30", "noise20", "noise10", "noise0"],
            ["lowpass6000", "lowpass3000", "lowpass1000"],
            ["clip0.5", "clip0.2", "clip0.05"],
        ):
            values = [fad(e["reference"], e[name]) for name in family]
            assert floor < values[0], (family, floor, values)
            assert all(a < b for a, b in itertools.pairwise(values)), (family, values)


def test_kad_is_near_zero_for_real_split_and_rises_with_noise(degradation_embeddings):
    e = degradation_embeddings
    floor = kad(e["reference"], e["real"])
    values = [kad(e["reference"], e[f"noise{snr}"]) for snr in (30, 20, 10, 0)]
    assert abs(floor) < values[0]
    assert all(a < b for a, b in itertools.pairwise(values))


def test_kad_bandwidth_comes_from_the_reference_set():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(50, 8))
    ev = rng.normal(size=(40, 8)) * 5
    distances = np.linalg.norm(ref[:, None] - ref[None], axis=-1)[np.triu_indices(50, 1)]
    assert median_bandwidth(ref) == pytest.approx(np.median(distances))
    assert kad(ref, ev) == pytest.approx(kad(ref, ev, bandwidth=np.median(distances)))


def test_fad_inf_is_seeded_and_removes_small_sample_bias():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(2000, 16))
    ev = rng.normal(size=(200, 16)) + 0.2  # true FAD = 16 * 0.04 = 0.64
    first, second = fad_inf(ref, ev, seed=3), fad_inf(ref, ev, seed=3)
    assert first.value == second.value and first.sizes == second.sizes
    plain = fad(ref, ev)
    assert abs(first.value - 0.64) < abs(plain - 0.64)


def test_per_clip_scores_flag_the_outliers():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(100, 8))
    ev = rng.normal(size=(20, 8))
    ev[5] += 6.0
    scores, percentiles = per_clip_scores(ref, ev)
    assert int(np.argmax(scores)) == 5 and percentiles[5] == 100.0
    assert np.all(np.isfinite(scores))


def test_bootstrap_interval_contains_the_value_and_is_seeded():
    rng = np.random.default_rng(0)
    ref, ev = rng.normal(size=(200, 8)), rng.normal(size=(100, 8)) + 0.3
    stats = gaussian_stats(ref)

    def statistic(idx):
        from evaluation.fad import frechet_from_stats

        return frechet_from_stats(stats, gaussian_stats(ev[idx], warn_rank=False))

    a = bootstrap_ci(statistic, 100, n_bootstrap=100, seed=1)
    b = bootstrap_ci(statistic, 100, n_bootstrap=100, seed=1)
    assert a == b
    assert a.ci_low < a.value < a.ci_high
    with pytest.raises(ValueError, match="at least 2"):
        bootstrap_ci(statistic, 1)


def test_paired_test_finds_the_better_checkpoint():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(300, 8))
    noise = rng.normal(size=(150, 8))
    better, worse = noise + 0.1, noise * 1.3 + 0.4  # same seeds: paired clips
    kad_of = {name: kernel_stats(ref, x).kad for name, x in (("better", better), ("worse", worse))}
    result = paired_bootstrap_test(
        kad_of["better"], kad_of["worse"], 150, 150, paired=True, n_bootstrap=100
    )
    assert result.difference < 0 and result.p_value < 0.05 and result.ci_high < 0
    reverse = paired_bootstrap_test(
        kad_of["worse"], kad_of["better"], 150, 150, paired=True, n_bootstrap=100
    )
    assert reverse.p_value > 0.5
    with pytest.raises(ValueError, match="equal clip counts"):
        paired_bootstrap_test(kad_of["better"], kad_of["worse"], 150, 149, paired=True)


def test_streaming_metrics_equal_the_batch_functions():
    rng = np.random.default_rng(0)
    ref, ev = rng.normal(size=(90, 6)), rng.normal(size=(70, 6)) + 0.5
    fad_metric, kad_metric = FADMetric(), KADMetric()
    for chunk in np.array_split(ref, 4):
        fad_metric.update(torch.from_numpy(chunk), real=True)
        kad_metric.update(torch.from_numpy(chunk), real=True)
    for chunk in np.array_split(ev, 3):
        fad_metric.update(torch.from_numpy(chunk), real=False)
        kad_metric.update(torch.from_numpy(chunk), real=False)
    assert float(fad_metric.compute()) == pytest.approx(fad(ref, ev), rel=1e-10)
    assert float(kad_metric.compute()) == pytest.approx(kad(ref, ev), rel=1e-10)
