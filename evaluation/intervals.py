"""Confidence intervals of a share (successes out of trials): the Wilson score interval, used wherever a
report gives a rate (copies flagged, controls that land, estimates within tolerance)."""

from __future__ import annotations

from scipy.stats import binomtest


def wilson_interval(successes: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval (without continuity correction) of the share `successes / total`, as fractions;
    (nan, nan) when `total` is 0 (scipy's `binomtest(...).proportion_ci(method="wilson")`)."""
    if total <= 0:
        return (float("nan"), float("nan"))
    interval = binomtest(int(successes), int(total)).proportion_ci(confidence, method="wilson")
    return (float(interval.low), float(interval.high))


def mcnemar_exact(only_first: int, only_second: int) -> float:
    """Two-sided exact McNemar p-value of paired outcomes: the discordant pairs (hit by the first only,
    by the second only) as a binomial test of 1/2; 1.0 when there is no discordant pair."""
    discordant = int(only_first) + int(only_second)
    if discordant == 0:
        return 1.0
    return float(binomtest(int(only_first), discordant, 0.5).pvalue)
