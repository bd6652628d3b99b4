"""Kernel Audio Distance: unbiased MMD^2 between two embedding sets with a Gaussian (RBF) kernel,
scaled by 100 as in kadtk (units: 100 x squared RKHS distance; 0 means same distribution).

Bandwidth: the median pairwise Euclidean distance within the reference set (the median
heuristic), so the kernel is fixed by the yardstick and not by the model being judged. Unlike FAD,
the estimator is unbiased at any N and assumes no Gaussianity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

KAD_SCALE = 100.0


def median_bandwidth(reference: np.ndarray, max_points: int = 4000) -> float:
    """Median pairwise Euclidean distance among reference embeddings (the first `max_points`, deterministic)."""
    x = torch.as_tensor(np.asarray(reference)[:max_points], dtype=torch.float64)
    if len(x) < 2:
        raise ValueError(f"KAD bandwidth needs at least 2 reference clips, got {len(x)}")
    distances = torch.cdist(x, x)
    upper = distances[torch.triu(torch.ones_like(distances, dtype=torch.bool), diagonal=1)]
    bandwidth = float(upper.median())
    if bandwidth <= 0:
        raise ValueError("reference embeddings are all identical; the KAD bandwidth would be 0")
    return bandwidth


def rbf_kernel(x: torch.Tensor, y: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """exp(-||x - y||^2 / (2 bandwidth^2)) for all pairs, float64."""
    return torch.exp(-torch.cdist(x, y).square() / (2.0 * bandwidth**2))


@dataclass
class KernelStats:
    """Kernel matrices of one evaluated set against the reference, for fast resampling.

    `eval_eval` `[N, N]`, `eval_ref` `[N, M]`, `ref_ref_mean`: unbiased mean of k(r, r').
    """

    eval_eval: np.ndarray
    eval_ref: np.ndarray
    ref_ref_mean: float
    bandwidth: float

    def kad(self, indices: np.ndarray | None = None) -> float:
        """KAD of the evaluated subset `indices` (all clips when None); duplicates allowed (bootstrap)."""
        # numpy, not torch: these small ops are many times slower with torch's thread pool on a busy CPU
        if indices is None:
            kee, ker = self.eval_eval, self.eval_ref
        else:
            kee, ker = self.eval_eval[np.ix_(indices, indices)], self.eval_ref[indices]
        n = kee.shape[0]
        if n < 2:
            raise ValueError("KAD needs at least 2 evaluated clips")
        eval_mean = (kee.sum() - np.trace(kee)) / (n * (n - 1))
        return float(KAD_SCALE * (eval_mean + self.ref_ref_mean - 2.0 * ker.mean()))


def kernel_stats(
    reference: np.ndarray, evaluated: np.ndarray, bandwidth: float | None = None
) -> KernelStats:
    """Precompute kernels for `kad`; `bandwidth=None` uses the reference median heuristic."""
    ref = torch.as_tensor(np.asarray(reference), dtype=torch.float64)
    ev = torch.as_tensor(np.asarray(evaluated), dtype=torch.float64)
    if len(ref) < 2 or len(ev) < 2:
        raise ValueError(
            f"KAD needs at least 2 clips per set, got reference={len(ref)} evaluated={len(ev)}"
        )
    if not (torch.isfinite(ref).all() and torch.isfinite(ev).all()):
        raise ValueError("KAD: embeddings contain NaN or infinite values")
    bandwidth = bandwidth or median_bandwidth(reference)
    krr = rbf_kernel(ref, ref, bandwidth)
    m = len(ref)
    ref_ref_mean = float((krr.sum() - krr.diagonal().sum()) / (m * (m - 1)))
    return KernelStats(
        rbf_kernel(ev, ev, bandwidth).numpy(),
        rbf_kernel(ev, ref, bandwidth).numpy(),
        ref_ref_mean,
        bandwidth,
    )


def kad(reference: np.ndarray, evaluated: np.ndarray, bandwidth: float | None = None) -> float:
    """Kernel Audio Distance (x100 unbiased MMD^2) between two `[N, dim]` embedding sets; can be slightly < 0."""
    return kernel_stats(reference, evaluated, bandwidth).kad()


class KADMetric(Metric):
    """Streaming KAD: `update(embeddings, real=...)`, `compute()` -> KAD; states concatenate across DDP ranks."""

    full_state_update = False
    higher_is_better = False
    is_differentiable = False

    def __init__(self, bandwidth: float | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.bandwidth = bandwidth
        self.add_state("reference", default=[], dist_reduce_fx="cat")
        self.add_state("evaluated", default=[], dist_reduce_fx="cat")

    def update(self, embeddings: torch.Tensor, real: bool) -> None:
        embeddings = torch.as_tensor(embeddings).detach().to(torch.float64)
        (self.reference if real else self.evaluated).append(embeddings)

    def compute(self) -> torch.Tensor:
        ref = dim_zero_cat(self.reference).cpu().numpy()
        ev = dim_zero_cat(self.evaluated).cpu().numpy()
        return torch.tensor(kad(ref, ev, self.bandwidth), dtype=torch.float64)
