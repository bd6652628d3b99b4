"""MAD, the MAUVE Audio Divergence (Huang et al., ISMIR 2025, arXiv:2503.16669): -ln MAUVE between
the evaluated and the reference embeddings (0 = same distribution, larger = further apart; no unit).

MAUVE (Pillutla et al., NeurIPS 2021) as in the `mauve-text` package that the authors' `mad_metric`
calls with its defaults: both sets are joined, reduced by PCA to the components explaining 90% of
the variance, quantised by k-means into max(2, round(min(N, M) / 10)) clusters (5 restarts, 500
iterations, seeded), and the two cluster histograms P (evaluated) and Q (reference) are compared
along the divergence frontier: for 25 mixtures R = w P + (1 - w) Q, the point
(exp(-5 KL(Q || R)), exp(-5 KL(P || R))); MAUVE is the area under that curve.

Written here with scikit-learn (PCA, KMeans) rather than depending on `mauve-text`, which pulls
faiss. The paper's MAD uses MERT-330M layer 24 with max pooling; any registered embedder can be
used here (the report names it), so values are comparable with the paper only with that embedder.

MAD has a ceiling: once no cluster holds clips of both sets, MAUVE bottoms out (about 0.004 with
25 mixture points, MAD about 5.5) while FAD keeps growing; MAD ranks sets that overlap, it does not
measure how far apart two disjoint sets are.

Bootstrap intervals (`MADStats.mad(indices)`) keep the quantisation fitted on all clips and
resample the evaluated clips' cluster labels: re-running k-means per replicate would mix the
clustering's own noise into the interval and cost minutes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAUVE_SCALING = 5.0
DIVERGENCE_POINTS = 25
EXPLAINED_VARIANCE = 0.9


def num_clusters(num_evaluated: int, num_reference: int) -> int:
    """The `mauve-text` default bucket count: one cluster per ten clips of the smaller set, >= 2."""
    return max(2, round(min(num_evaluated, num_reference) / 10))


def kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p || q) in nats for histograms; terms with p = 0 are 0."""
    mask = p > 0
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))


def mauve_from_histograms(p: np.ndarray, q: np.ndarray) -> float:
    """Area under the divergence frontier of histograms `p` (evaluated) and `q` (reference), in (0, 1]."""
    weights = np.linspace(1e-6, 1 - 1e-6, DIVERGENCE_POINTS)
    curve = [[0.0, np.inf]]
    for w in weights:
        mixture = w * p + (1 - w) * q
        curve.append([kl_divergence(q, mixture), kl_divergence(p, mixture)])
    curve.append([np.inf, 0.0])
    x, y = np.exp(-MAUVE_SCALING * np.asarray(curve)).T
    by_x, by_y = np.argsort(x, kind="stable"), np.argsort(y, kind="stable")
    # the mean of both integration orders, as mauve-text does, so MAUVE(P, Q) = MAUVE(Q, P)
    area = 0.5 * (np.trapezoid(y[by_x], x[by_x]) + np.trapezoid(x[by_y], y[by_y]))
    return float(np.clip(area, 1e-12, 1.0))


@dataclass
class MADStats:
    """Cluster labels of the evaluated `[N]` and reference `[M]` clips, for MAD and its bootstrap."""

    evaluated_labels: np.ndarray
    reference_labels: np.ndarray
    num_clusters: int
    num_components: int
    seed: int

    def histogram(self, labels: np.ndarray) -> np.ndarray:
        return np.bincount(labels, minlength=self.num_clusters) / len(labels)

    def mauve(self, indices: np.ndarray | None = None) -> float:
        """MAUVE of the evaluated subset `indices` (all clips when None; duplicates allowed)."""
        labels = self.evaluated_labels if indices is None else self.evaluated_labels[indices]
        return mauve_from_histograms(self.histogram(labels), self.histogram(self.reference_labels))

    def mad(self, indices: np.ndarray | None = None) -> float:
        """MAD = -ln MAUVE (>= 0) of the evaluated subset `indices`."""
        return float(max(0.0, -np.log(self.mauve(indices))))


def mad_stats(
    reference: np.ndarray,
    evaluated: np.ndarray,
    seed: int = 0,
    clusters: int | None = None,
    explained_variance: float = EXPLAINED_VARIANCE,
) -> MADStats:
    """Fit the PCA + k-means quantisation on both sets (seeded) and label every clip."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    ref = np.asarray(reference, dtype=np.float64)
    ev = np.asarray(evaluated, dtype=np.float64)
    if len(ref) < 2 or len(ev) < 2:
        raise ValueError(
            f"MAD needs at least 2 clips per set, got reference={len(ref)} evaluated={len(ev)}"
        )
    if not (np.all(np.isfinite(ref)) and np.all(np.isfinite(ev))):
        raise ValueError("MAD: embeddings contain NaN or infinite values")
    data = np.concatenate([ev, ref])
    pca = PCA(svd_solver="full", random_state=seed + 1).fit(data)
    explained = np.cumsum(pca.explained_variance_ratio_)
    components = int(np.searchsorted(explained, explained_variance) + 1) if len(explained) else 0
    reduced = pca.transform(data)[:, : max(components, 1)]
    k = clusters or num_clusters(len(ev), len(ref))
    k = min(k, len(np.unique(reduced.round(12), axis=0)))  # never more clusters than points
    labels = (
        KMeans(n_clusters=k, n_init=5, max_iter=500, random_state=seed).fit_predict(reduced)
        if k > 1
        else np.zeros(len(data), dtype=np.int64)
    )
    return MADStats(labels[: len(ev)], labels[len(ev) :], max(k, 1), max(components, 1), seed)


def mad(reference: np.ndarray, evaluated: np.ndarray, seed: int = 0) -> float:
    """MAUVE Audio Divergence between `[M, dim]` reference and `[N, dim]` evaluated embeddings."""
    return mad_stats(reference, evaluated, seed).mad()
