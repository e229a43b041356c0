"""The statistics of experiment reports (pure, no dependencies): Wilson intervals for success
rates, the two-proportion z-test, Welch's t-test with the Student t distribution (through the
regularized incomplete beta function, as in Numerical Recipes §6.4), and mean intervals."""

from __future__ import annotations

import math
from dataclasses import dataclass


def normal_cdf(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def normal_quantile(p: float) -> float:
    """The standard normal quantile (Acklam's rational approximation, |error| < 1.2e-9)."""
    if not 0 < p < 1:
        raise ValueError("p must be in (0, 1)")
    a = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
         1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)  # fmt: skip
    b = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
         6.680131188771972e01, -1.328068155288572e01)  # fmt: skip
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
         -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)  # fmt: skip
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00,
         3.754408661907416e00)  # fmt: skip
    low = 0.02425
    if p < low:
        q = math.sqrt(-2 * math.log(p))
        num = ((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]
        return num / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    if p > 1 - low:
        return -normal_quantile(1 - p)
    q = p - 0.5
    r = q * q
    num = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q
    return num / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1, a - 1
    c, d = 1.0, 1 - qab * x / qap
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1 + aa * d
        d = 1 / (d if abs(d) > tiny else tiny)
        c = 1 + aa / c if abs(1 + aa / c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1 + aa * d
        d = 1 / (d if abs(d) > tiny else tiny)
        c = 1 + aa / c if abs(1 + aa / c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1) < 3e-14:
            break
    return h


def incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1) / (a + b + 2):
        return front * _betacf(a, b, x) / a
    return 1 - front * _betacf(b, a, 1 - x) / b


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom."""
    return incomplete_beta(df / 2, 0.5, df / (df + t * t))


def t_quantile(p: float, df: float) -> float:
    """The t quantile by bisection on the CDF (for intervals)."""
    lo, hi = 0.0, 1e3
    target = 2 * (1 - p)  # two-sided tail mass at the quantile
    for _ in range(200):
        mid = (lo + hi) / 2
        if t_two_sided_p(mid, df) > target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def wilson_interval(successes: int, n: int, confidence: float) -> tuple[float, float] | None:
    if n == 0:
        return None
    z = normal_quantile(1 - (1 - confidence) / 2)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Comparison:
    difference: float  # variant minus control
    p_value: float | None
    statistic: float | None
    test: str


def two_proportion_z(s1: int, n1: int, s2: int, n2: int) -> Comparison:
    """Control (s1 of n1) against a variant (s2 of n2), pooled two-sided z-test."""
    test = "two-proportion z-test (pooled, two-sided)"
    if n1 == 0 or n2 == 0:
        return Comparison(0.0, None, None, test)
    p1, p2 = s1 / n1, s2 / n2
    pooled = (s1 + s2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return Comparison(p2 - p1, 1.0 if p1 == p2 else 0.0, None, test)
    z = (p2 - p1) / se
    return Comparison(p2 - p1, 2 * (1 - normal_cdf(abs(z))), z, test)


RELATIVE_EPSILON = 1e-9
"""Differences and spreads smaller than this share of the values' magnitude are float rounding
(summing 333 copies of 0.1 is not exactly 33.3): treated as none, so constant samples never look
significantly different."""


def mean_and_var(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = math.fsum(values) / n
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    scale = max(abs(v) for v in values) if values else 0.0
    if math.sqrt(var) <= RELATIVE_EPSILON * scale:
        var = 0.0
    return mean, var


def welch_t(control: list[float], variant: list[float]) -> Comparison:
    """Welch's unequal-variances t-test, two-sided, Welch–Satterthwaite degrees of freedom."""
    test = "Welch's t-test (two-sided)"
    if len(control) < 2 or len(variant) < 2:
        return Comparison(0.0, None, None, test)
    m1, v1 = mean_and_var(control)
    m2, v2 = mean_and_var(variant)
    scale = max(abs(m1), abs(m2))
    difference = 0.0 if abs(m2 - m1) <= RELATIVE_EPSILON * scale else m2 - m1
    a, b = v1 / len(control), v2 / len(variant)
    if a + b == 0:
        return Comparison(difference, 1.0 if difference == 0 else 0.0, None, test)
    if difference == 0:
        return Comparison(0.0, 1.0, 0.0, test)
    m2 = m1 + difference
    t = (m2 - m1) / math.sqrt(a + b)
    df = (a + b) ** 2 / (a * a / (len(control) - 1) + b * b / (len(variant) - 1))
    return Comparison(m2 - m1, t_two_sided_p(t, df), t, test)


def mean_interval(values: list[float], confidence: float) -> tuple[float, float] | None:
    if len(values) < 2:
        return None
    mean, var = mean_and_var(values)
    half = t_quantile(1 - (1 - confidence) / 2, len(values) - 1) * math.sqrt(var / len(values))
    return mean - half, mean + half


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
