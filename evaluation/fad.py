"""Frechet Audio Distance between two sets of clip embeddings (units: squared embedding distance).

The Frechet distance is computed in float64 with a symmetric eigen formulation,
tr sqrt(S1 S2) = tr sqrt(S1^1/2 S2 S1^1/2), so it never meets the imaginary parts that a general
`sqrtm` produces. Also here: FAD-inf (the value extrapolated to infinitely many clips, seeded),
per-clip scores, and `FADMetric`, a streaming torchmetrics `Metric` that syncs across DDP ranks.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat


@dataclass
class GaussianStats:
    """Mean `[dim]` and covariance `[dim, dim]` (float64) of `count` embeddings, plus the PSD square root."""

    mean: np.ndarray
    covariance: np.ndarray
    count: int
    covariance_sqrt: np.ndarray | None = None

    def with_sqrt(self) -> GaussianStats:
        if self.covariance_sqrt is None:
            self.covariance_sqrt = psd_sqrt(self.covariance)
        return self


def psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a positive semi-definite matrix (negative round-off eigenvalues -> 0)."""
    eigenvalues, eigenvectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ eigenvectors.T


def gaussian_stats(
    embeddings: np.ndarray | torch.Tensor, warn_rank: bool = True, name: str = "set"
) -> GaussianStats:
    """Mean and unbiased covariance of `[N, dim]` embeddings in float64; needs N >= 2.

    Warns when N < dim: the covariance is then rank-deficient and FAD is biased upwards
    (prefer FAD-inf or more clips).
    """
    x = np.asarray(
        embeddings.detach().cpu() if isinstance(embeddings, torch.Tensor) else embeddings,
        dtype=np.float64,
    )
    if x.ndim != 2:
        raise ValueError(f"embeddings must be [N, dim], got shape {x.shape}")
    count, dim = x.shape
    if count < 2:
        raise ValueError(f"{name}: FAD needs at least 2 clips, got {count}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: embeddings contain NaN or infinite values")
    if warn_rank and count < dim:
        warnings.warn(
            f"{name}: {count} clips < embedding dimension {dim}: the covariance is rank-deficient and FAD is "
            "biased upwards; compare FAD only at equal N, or use FAD-inf",
            stacklevel=2,
        )
    return GaussianStats(x.mean(axis=0), np.cov(x, rowvar=False).reshape(dim, dim), count)


def frechet_distance(
    mean1: np.ndarray, cov1: np.ndarray, mean2: np.ndarray, cov2: np.ndarray
) -> float:
    """||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr sqrt(S1^1/2 S2 S1^1/2), in float64, >= 0."""
    return frechet_from_stats(
        GaussianStats(np.asarray(mean1, np.float64), np.asarray(cov1, np.float64), 0).with_sqrt(),
        GaussianStats(np.asarray(mean2, np.float64), np.asarray(cov2, np.float64), 0),
    )


def frechet_from_stats(first: GaussianStats, second: GaussianStats) -> float:
    """Frechet distance between two Gaussians; `first`'s square root is computed once and reused."""
    root = first.with_sqrt().covariance_sqrt
    middle = root @ second.covariance @ root
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
    trace_sqrt = float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())
    diff = first.mean - second.mean
    value = float(
        diff @ diff + np.trace(first.covariance) + np.trace(second.covariance) - 2.0 * trace_sqrt
    )
    return max(value, 0.0)  # exact value is >= 0; round-off can leave about -1e-12


def fad(reference: np.ndarray, evaluated: np.ndarray) -> float:
    """FAD between reference embeddings `[N_ref, dim]` and evaluated embeddings `[N_eval, dim]`."""
    return frechet_from_stats(
        gaussian_stats(reference, name="reference"), gaussian_stats(evaluated, name="evaluated")
    )


@dataclass
class FadInfResult:
    """FAD-inf: intercept of FAD ~ a + b / N over subset sizes `sizes` (seeded); `r2` of the fit."""

    value: float
    slope: float
    r2: float
    sizes: list[int]
    fads: list[float]
    seed: int


def fad_inf(
    reference: np.ndarray | GaussianStats,
    evaluated: np.ndarray,
    num_points: int = 15,
    min_fraction: float = 0.5,
    seed: int = 0,
) -> FadInfResult:
    """Extrapolate FAD to infinitely many evaluated clips (Chong & Forsyth's FID-inf, as in fadtk).

    FAD is computed on `num_points` seeded random subsets (without replacement) of sizes from
    `min_fraction * N` to N; a least-squares line in 1/N gives the intercept. The reference set is
    used whole. Removes most of the small-N bias, so sets of different size can be compared.
    """
    evaluated = np.asarray(evaluated, dtype=np.float64)
    count = len(evaluated)
    if count < 10:
        raise ValueError(f"FAD-inf needs at least 10 evaluated clips, got {count}")
    ref = (
        reference
        if isinstance(reference, GaussianStats)
        else gaussian_stats(reference, warn_rank=False)
    )
    ref.with_sqrt()
    rng = np.random.default_rng(seed)
    sizes = sorted(
        {round(n) for n in np.linspace(max(2, min_fraction * count), count, num_points)}
    )
    fads = []
    for size in sizes:
        subset = evaluated[rng.choice(count, size=size, replace=False)]
        fads.append(frechet_from_stats(ref, gaussian_stats(subset, warn_rank=False)))
    inverse = 1.0 / np.asarray(sizes, dtype=np.float64)
    values = np.asarray(fads)
    if len(sizes) < 2:
        return FadInfResult(float(values[-1]), 0.0, 1.0, sizes, fads, seed)
    slope, intercept = np.polyfit(inverse, values, 1)
    predicted = intercept + slope * inverse
    spread = float(((values - values.mean()) ** 2).sum())
    r2 = 1.0 - float(((values - predicted) ** 2).sum()) / spread if spread > 0 else 1.0
    return FadInfResult(float(intercept), float(slope), r2, sizes, [float(f) for f in fads], seed)


def per_clip_scores(
    reference: np.ndarray | GaussianStats,
    evaluated: np.ndarray,
    shrinkage: float = 0.1,
    reference_embeddings: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """How far each evaluated clip lies from the reference distribution.

    Returns `(scores, percentiles)`: the squared Mahalanobis distance of each clip to the reference
    Gaussian (covariance shrunk towards `tr(S)/dim * I` by `shrinkage`, so it is invertible for any
    N), and the share (0-100) of reference clips that score lower. Percentiles near 100 mark clips
    unlike anything in the reference set: the ones pulling FAD up. `reference` is the reference
    embeddings `[M, dim]` or their `GaussianStats` (from a `.npz`); with stats only, percentiles
    need `reference_embeddings` and are NaN without them.
    """
    ev = np.asarray(evaluated, dtype=np.float64)
    if isinstance(reference, GaussianStats):
        stats = reference
        ref = None if reference_embeddings is None else np.asarray(reference_embeddings, np.float64)
    else:
        ref = np.asarray(reference, dtype=np.float64)
        stats = gaussian_stats(ref, warn_rank=False)
    dim = len(stats.mean)
    covariance = (1 - shrinkage) * stats.covariance + shrinkage * np.trace(
        stats.covariance
    ) / dim * np.eye(dim)
    covariance += 1e-12 * np.eye(dim)
    precision = np.linalg.inv(covariance)

    def mahalanobis(x: np.ndarray) -> np.ndarray:
        centred = x - stats.mean
        return np.einsum("nd,de,ne->n", centred, precision, centred)

    scores = mahalanobis(ev)
    if ref is None:
        return scores, np.full(len(scores), np.nan)
    ref_scores = np.sort(mahalanobis(ref))
    percentiles = 100.0 * np.searchsorted(ref_scores, scores, side="right") / len(ref_scores)
    return scores, percentiles


def fad_contributions(reference: GaussianStats, evaluated: np.ndarray) -> np.ndarray:
    """Each evaluated clip's contribution to FAD: FAD(all clips) - FAD(all but that clip) `[N]`.

    Positive: the set is further from the reference with the clip than without it (fadtk's
    per-song idea, as a leave-one-out difference so it adds up against the set's own FAD).
    Needs N >= 3. The left-out covariances are rank-one downdates of the full one (exact).
    """
    ev = np.asarray(evaluated, dtype=np.float64)
    count = len(ev)
    if count < 3:
        raise ValueError(f"per-clip FAD contributions need at least 3 clips, got {count}")
    reference.with_sqrt()
    full = gaussian_stats(ev, warn_rank=False)
    total = frechet_from_stats(reference, full)
    out = np.empty(count)
    for i in range(count):
        # mean and unbiased covariance without clip i, from the full-set sums
        centred = ev[i] - full.mean
        mean = (count * full.mean - ev[i]) / (count - 1)
        covariance = (
            (count - 1) * full.covariance - count / (count - 1) * np.outer(centred, centred)
        ) / (count - 2)
        out[i] = total - frechet_from_stats(reference, GaussianStats(mean, covariance, count - 1))
    return out


class FADMetric(Metric):
    """Streaming FAD: `update(embeddings, real=True|False)` on batches, `compute()` -> FAD (float64 scalar).

    Embeddings are kept per set (concatenated across DDP ranks on sync), so FAD-inf and bootstrap
    intervals can be computed from the same state with `reference_embeddings()`/`evaluated_embeddings()`.
    """

    full_state_update = False
    higher_is_better = False
    is_differentiable = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("reference", default=[], dist_reduce_fx="cat")
        self.add_state("evaluated", default=[], dist_reduce_fx="cat")

    def update(self, embeddings: torch.Tensor, real: bool) -> None:
        """Add `[batch, dim]` embeddings to the reference (`real=True`) or evaluated set."""
        embeddings = torch.as_tensor(embeddings).detach().to(torch.float64)
        if embeddings.ndim != 2:
            raise ValueError(f"embeddings must be [batch, dim], got {tuple(embeddings.shape)}")
        (self.reference if real else self.evaluated).append(embeddings)

    @staticmethod
    def _concatenated(state: list[torch.Tensor] | torch.Tensor) -> np.ndarray:
        # after a DDP sync a "cat" list state is one tensor, so test for an empty list explicitly
        if isinstance(state, list) and not state:
            return np.zeros((0, 0))
        return dim_zero_cat(state).cpu().numpy()

    def reference_embeddings(self) -> np.ndarray:
        return self._concatenated(self.reference)

    def evaluated_embeddings(self) -> np.ndarray:
        return self._concatenated(self.evaluated)

    def compute(self) -> torch.Tensor:
        return torch.tensor(
            fad(self.reference_embeddings(), self.evaluated_embeddings()), dtype=torch.float64
        )
