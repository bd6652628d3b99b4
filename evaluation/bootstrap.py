"""Resampling statistics for any set-level metric: percentile bootstrap confidence intervals and a
paired bootstrap test of whether checkpoint A beats checkpoint B. Seeded; metric-agnostic.

Statistics are passed as functions of an index array into the evaluated clips. The reference set
is held fixed (it is the shared yardstick), so intervals reflect the sampling of generated clips.

Resampling with replacement duplicates clips, which inflates set statistics such as FAD (fewer
distinct clips) and KAD (duplicate pairs have kernel value 1). Intervals are therefore the
percentile interval shifted by the bootstrap's own bias estimate (mean of replicates - value):
they keep the width of the sampling spread and are centred on the estimate (`method="shifted"`);
`method="percentile"` gives the plain percentile interval.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
from tqdm.auto import tqdm

Statistic = Callable[[np.ndarray], float]


@dataclass
class BootstrapResult:
    """Point value on all clips, its `confidence` interval over `n_bootstrap` resamples, and the
    bootstrap bias estimate that the shifted interval removed."""

    value: float
    ci_low: float
    ci_high: float
    confidence: float
    n_bootstrap: int
    seed: int
    bias: float
    method: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PairedTestResult:
    """A vs B on the same reference: `difference = A - B` with its interval, and the one-sided
    bootstrap p-value of "A is not better than B" (small p: A beats B)."""

    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    a_better_share: float
    paired: bool
    lower_is_better: bool
    n_bootstrap: int
    seed: int

    def to_dict(self) -> dict:
        return asdict(self)


def bootstrap_ci(
    statistic: Statistic,
    num_clips: int,
    n_bootstrap: int = 500,
    confidence: float = 0.95,
    seed: int = 0,
    progress: bool = False,
    method: str = "shifted",
) -> BootstrapResult:
    """Bootstrap interval: resample `num_clips` indices with replacement `n_bootstrap` times."""
    if num_clips < 2:
        raise ValueError(f"bootstrap needs at least 2 clips, got {num_clips}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if method not in ("shifted", "percentile"):
        raise ValueError(f"method must be 'shifted' or 'percentile', got {method!r}")
    rng = np.random.default_rng(seed)
    value = float(statistic(np.arange(num_clips)))
    replicates = np.array(
        [
            statistic(rng.integers(0, num_clips, num_clips))
            for _ in tqdm(range(n_bootstrap), desc="bootstrap", disable=not progress)
        ]
    )
    alpha = (1 - confidence) / 2
    low, high = np.quantile(replicates, [alpha, 1 - alpha])
    bias = float(replicates.mean() - value)
    if method == "shifted":
        low, high = low - bias, high - bias
    return BootstrapResult(
        value, float(low), float(high), confidence, n_bootstrap, seed, bias, method
    )


def paired_bootstrap_test(
    statistic_a: Statistic,
    statistic_b: Statistic,
    num_clips_a: int,
    num_clips_b: int,
    paired: bool = True,
    lower_is_better: bool = True,
    n_bootstrap: int = 500,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedTestResult:
    """Does A beat B? Resamples both sets; with `paired=True` (clip i of A and B share a seed or a
    prompt, so `num_clips_a == num_clips_b`) the same indices are drawn for both, which removes the
    prompt/seed variance from the difference. Replicate differences are shifted by their bootstrap
    bias (as in `bootstrap_ci`) before the interval and the p-value are read off."""
    if paired and num_clips_a != num_clips_b:
        raise ValueError(
            f"a paired test needs equal clip counts, got {num_clips_a} and {num_clips_b}"
        )
    rng = np.random.default_rng(seed)
    difference = float(statistic_a(np.arange(num_clips_a)) - statistic_b(np.arange(num_clips_b)))
    diffs = np.empty(n_bootstrap)
    for i in range(n_bootstrap):
        index_a = rng.integers(0, num_clips_a, num_clips_a)
        index_b = index_a if paired else rng.integers(0, num_clips_b, num_clips_b)
        diffs[i] = statistic_a(index_a) - statistic_b(index_b)
    diffs -= diffs.mean() - difference  # same bias shift as bootstrap_ci
    a_better = diffs < 0 if lower_is_better else diffs > 0
    alpha = (1 - confidence) / 2
    low, high = np.quantile(diffs, [alpha, 1 - alpha])
    p_value = float((np.sum(~a_better) + 1) / (n_bootstrap + 1))
    return PairedTestResult(
        difference,
        float(low),
        float(high),
        p_value,
        float(a_better.mean()),
        paired,
        lower_is_better,
        n_bootstrap,
        seed,
    )
