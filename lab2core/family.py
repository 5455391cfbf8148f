"""A family of paired comparisons judged together: Holm's step-down adjustment, the interval at each
comparison's Holm step, and, for a comparison not yet significant, how many seeds a new run would
need (paired t power).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from lab2.core.stats import (
    ALPHA,
    CONFIDENCE,
    PairedComparison,
    equivalence_p,
    sd_interval,
    t_interval,
)

# scipy.stats and statsmodels are imported inside the functions that use them, as in stats.py.
POWER = 0.8
MAX_SEEDS = 1_000_000  # "seeds needed" beyond this is reported as unknown (None)


@dataclass(frozen=True)
class SeedPlan:
    """Seeds a new run would need, for a comparison not yet significant: 80% power at the family's
    level α/m (the level Holm's first step asks for). For the observed difference, at the
    observed sd of the differences and at both ends of that sd's 95% interval (an sd from few
    seeds is itself uncertain); for the user's smallest effect of interest, the power and the
    interval half-width (at the family's confidence)."""

    alpha: float = ALPHA
    seeds_needed: int | None = None
    seeds_needed_low: int | None = None
    seeds_needed_high: int | None = None
    seeds_needed_min_effect: int | None = None
    seeds_for_ci_min_effect: int | None = None


@dataclass(frozen=True)
class InFamily:
    """A paired comparison judged within its family: Holm's adjusted p, and the t interval at the
    level of its Holm step (1 − α/(m − k) for the k-th smallest p of m), which excludes 0 exactly
    when that step rejects. With a smallest effect of interest, the equivalence test's p (TOST
    within ±min_effect) and its Holm-adjusted p over the same family."""

    p_holm: float
    size: int
    confidence: float
    ci_low: float
    ci_high: float
    plan: SeedPlan = field(default_factory=SeedPlan)
    p_equivalence: float = float("nan")
    p_equivalence_holm: float = float("nan")

    @property
    def significant(self) -> bool:
        return significant(self.p_holm)

    @property
    def equivalent(self) -> bool:
        """Whether the equivalence test holds at the family's level: the mean difference lies
        within ±min_effect."""
        return significant(self.p_equivalence_holm)


def plan_seeds(c: PairedComparison, alpha: float, min_effect: float | None = None) -> SeedPlan:
    """The SeedPlan of comparison `c` at level `alpha`."""
    low_sd, high_sd = sd_interval(c.sd_diff, c.n)
    effect = c.mean_diff
    return SeedPlan(
        alpha,
        seeds_for_power(effect, c.sd_diff, alpha),
        seeds_for_power(effect, low_sd, alpha),
        seeds_for_power(effect, high_sd, alpha),
        seeds_for_power(min_effect, c.sd_diff, alpha) if min_effect else None,
        seeds_for_half_width(min_effect, c.sd_diff, 1 - alpha) if min_effect else None,
    )


def judge_family(
    comparisons: Sequence[PairedComparison],
    spread: float = np.inf,
    min_effect: float | None = None,
    alpha: float = ALPHA,
) -> list[InFamily]:
    """Each comparison within the family of all of them (those below two seeds stay out, with NaNs),
    with the seeds a new run would need for those not yet significant, and the equivalence test
    within ±min_effect, Holm over the same family (a comparison without a t-test counts in it,
    never equivalent)."""
    p = np.array([c.p_family for c in comparisons], dtype=float)
    adjusted = holm(p)
    present = np.flatnonzero(~np.isnan(p))
    equivalence = np.array(
        [equivalence_p(np.asarray(c.differences), min_effect or 0.0) for c in comparisons]
    )
    in_family = np.where(np.isnan(equivalence), 1.0, equivalence)
    in_family[np.isnan(p)] = np.nan
    equivalence_holm = holm(in_family) if min_effect else np.full(len(p), np.nan)
    # Holm's order, ties as holm() breaks them
    order = present[np.argsort(p[present], kind="stable")]
    confidence = np.full(len(p), np.nan)
    confidence[order] = 1 - alpha / (len(order) - np.arange(len(order)))
    judged = []
    for c, p_holm, level, p_same, p_same_holm in zip(
        comparisons, adjusted, confidence, equivalence, equivalence_holm, strict=True
    ):
        low, high = (
            t_interval(np.asarray(c.differences), level) if np.isfinite(level) else (np.nan, np.nan)
        )
        plan = (
            SeedPlan()
            if significant(p_holm)
            else plan_seeds(c, alpha / max(len(order), 1), min_effect)
        )
        ci_low, ci_high = np.clip([low, high], -spread, spread)
        judged.append(
            InFamily(
                float(p_holm),
                len(order),
                float(level),
                float(ci_low),
                float(ci_high),
                plan,
                float(p_same),
                float(p_same_holm),
            )
        )
    return judged


def significant(p_adjusted: float, alpha: float = ALPHA) -> bool:
    """Whether an adjusted p rejects at `alpha`: p ≤ α, as Holm's step-down rule (and statsmodels)
    has it."""
    return bool(p_adjusted <= alpha)


def holm(p_values: ArrayLike) -> np.ndarray:
    """Holm's step-down adjustment over a family of p-values (NaNs are left out of the family and
    stay NaN).

    statsmodels' multipletests(method="holm") gives the same numbers (tests/test_stats.py holds
    them together) but calls gc.collect() on every call: 22 ms each here, more in a process that
    holds torch and MLflow, for a step that takes microseconds. So the step-down is written here.
    """
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full_like(p, np.nan)
    present = np.flatnonzero(~np.isnan(p))
    order = present[np.argsort(p[present], kind="stable")]
    m = len(order)
    scaled = (m - np.arange(m)) * p[order]
    adjusted[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return adjusted


def paired_t_power(n: int | np.ndarray, effect_size: float, alpha: float = ALPHA) -> np.ndarray:
    """Power of the two-sided paired t-test with n pairs when the true mean difference is
    effect_size · sd (statsmodels' one-sample t power)."""
    from statsmodels.stats.power import TTestPower

    n = np.asarray(n)
    both = np.asarray(TTestPower().power(effect_size, n, alpha, alternative="two-sided"))
    # Where the wrong side's share underflows, scipy (under statsmodels) gives NaN: the right
    # side's share alone is then the power.
    one = np.asarray(TTestPower().power(abs(effect_size), n, alpha / 2, alternative="larger"))
    return np.where(np.isnan(both), one, both).astype(float)


def seeds_for_power(
    effect: float | None, sd: float, alpha: float = ALPHA, power: float = POWER
) -> int | None:
    """Fewest seeds (≥ 2) for which the paired t-test detects a mean difference `effect` with
    `power`, taking the paired differences' sd as `sd`; None when it cannot be said (no effect,
    no spread seen, > MAX_SEEDS)."""
    if effect is None or not np.isfinite(effect) or effect == 0 or not np.isfinite(sd) or sd == 0:
        return None
    from scipy import stats

    size = abs(effect) / sd
    # The z-test's n is a little below the t-test's; statsmodels' solve_power would search from
    # an arbitrary start and may miss by one seed, so the whole number is found from here.
    normal = ((stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)) / size) ** 2
    return _fewest(lambda n: paired_t_power(n, size, alpha) >= power, normal)


def seeds_for_half_width(
    effect: float | None, sd: float, confidence: float = CONFIDENCE
) -> int | None:
    """Fewest seeds (≥ 2) whose t interval of the mean difference has half-width ≤ `effect` at this
    sd."""
    from scipy import stats

    if effect is None or not np.isfinite(effect) or effect == 0 or not np.isfinite(sd) or sd == 0:
        return None
    effect = abs(effect)  # a half-width, like the power calculation's effect, has no sign
    normal = (stats.norm.ppf((1 + confidence) / 2) * sd / effect) ** 2
    return _fewest(
        lambda n: stats.t.ppf((1 + confidence) / 2, n - 1) * sd / np.sqrt(n) <= effect, normal
    )


def _fewest(enough: Callable[[np.ndarray], np.ndarray], guess: float) -> int | None:
    """Smallest n in [2, MAX_SEEDS] with enough(n), for a condition that stays true once true.

    The t-based answer lies a few seeds above the normal approximation `guess`: one vectorised look
    there, else doubling and bisection.
    """
    if guess > MAX_SEEDS:
        return None if not enough(np.asarray(MAX_SEEDS)) else _search(enough)
    window = np.arange(max(2, int(guess) - 2), int(guess) + 40)
    ok = np.asarray(enough(window))
    if ok.any() and (not ok[0] or window[0] == 2):
        return int(window[np.argmax(ok)])
    return _search(enough)


def _search(enough: Callable[[np.ndarray], np.ndarray]) -> int | None:
    """Doubling, then bisection, over [2, MAX_SEEDS]."""

    def holds(n: int) -> bool:
        return bool(enough(np.asarray(n)))

    high = 2
    while not holds(high):
        if high >= MAX_SEEDS:
            return None
        high = min(2 * high, MAX_SEEDS)
    low = max(2, high // 2)
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if holds(middle) else (middle + 1, high)
    return low
