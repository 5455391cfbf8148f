"""Statistics of repeated seeds: bounded intervals, paired comparisons and where seed-to-seed spread
comes from.

The comparisons are paired: seed s means the same initial weights (and split seed k the same data
split) in both groups, so a difference is judged on the per-seed differences, not on whether two
intervals overlap (Agarwal et al. 2021; Colas, Sigaud & Oudeyer 2018; Bouthillier et al. 2021). A
family of comparisons is judged together in `family.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import special

# scipy.stats and statsmodels are imported inside the functions that use them: their imports
# (0.7 s and 0.25 s more here) are paid only by a process that compares seeds (in `lab2 run`, the
# figure process), never by a rerun. Intervals over seeds (the lab report's) need scipy.special
# alone.
CONFIDENCE = 0.95
ALPHA = 0.05
# the sign-flip test's sample of sign patterns beyond EXACT_SIGN_FLIPS_UP_TO seeds
MONTE_CARLO_SEED = 0
# A percentile bootstrap of 3 seeds' mean covers the true mean about 73% of the time on k/50
# accuracies; the t interval keeps close to its 95% at 3, 5 and 10 seeds (tests/test_stats.py
# simulates it).
INTERVAL_KIND = "Student t interval of the mean over seeds, clipped to the metric's range"
FEW_SEEDS = 10  # below this the sd behind an interval over seeds is itself uncertain
# the interquartile mean (rliable's robust aggregate) is given from this many values on
IQM_FROM = 8
# bootstrap resamples of rliable's P(A > B), a statistic in steps of 1/(n·m)
IMPROVEMENT_RESAMPLES = 1999
ROW_RESAMPLES = 1999  # bootstrap resamples of the validation rows behind an accuracy difference
EXACT_SIGN_FLIPS_UP_TO = 16  # 2^16 sign patterns; beyond, a seeded Monte Carlo sample of them
SIGN_FLIP_RESAMPLES = 99_999
# Paired differences are rounded to this many decimals: the float noise of k/rows accuracies
# (~1e-17) goes, so equal values tie exactly and a constant difference has an sd of exactly 0.
DIFFERENCE_DECIMALS = 12


@dataclass(frozen=True)
class Description:
    """A group's values over seeds: count, mean, sd, range, a bounded 95% interval, and a warning if
    n is small."""

    n: int
    mean: float
    sd: float
    min: float
    max: float
    ci_low: float
    ci_high: float
    warning: str
    iqm: float = float("nan")  # the mean of the middle 50% of the values, from IQM_FROM values on


def describe(
    values: ArrayLike, bounds: tuple[float, float] = (-np.inf, np.inf), unit: str = "seeds"
) -> Description:
    """n, mean, sd (ddof 1), min, max and the 95% t interval of the mean of the finite `values`,
    inside `bounds`."""
    x = _finite(values)
    n = len(x)
    if n == 0:
        nan = float("nan")
        return Description(0, nan, nan, nan, nan, nan, nan, warning="no finite value")
    low, high = mean_interval(x, bounds=bounds)
    sd = float(np.std(x, ddof=1)) if n > 1 else float("nan")
    iqm = float("nan")
    if n >= IQM_FROM:
        from scipy import stats

        iqm = float(stats.trim_mean(x, 0.25))
    return Description(
        n,
        float(np.mean(x)),
        sd,
        float(x.min()),
        float(x.max()),
        low,
        high,
        few_seeds_warning(n, unit),
        iqm,
    )


def mean_interval(
    values: ArrayLike,
    confidence: float = CONFIDENCE,
    bounds: tuple[float, float] = (-np.inf, np.inf),
) -> tuple[float, float]:
    """mean ± t_{(1+c)/2, n−1} · sd/√n of the finite `values`, clipped to the metric's `bounds`
    (accuracies stay in [0, 1]); equal values give that value at both ends (no spread seen),
    fewer than two give NaNs."""
    x = _finite(values)
    if len(x) > 1 and not _varies(x):
        return float(x[0]), float(x[0])
    low, high = t_interval(x, confidence)  # NaN below two values
    return float(np.clip(low, *bounds)), float(np.clip(high, *bounds))


def few_seeds_warning(n: int, unit: str = "seeds") -> str:
    """A plain warning when n seeds are too few for an interval over them to mean much; ""
    otherwise."""
    if n >= FEW_SEEDS:
        return ""
    if n < 2:
        return f"n = {n}: no spread, no interval"
    return f"only {n} {unit}: the interval is wide, and the sd it rests on is itself uncertain"


def binomial_se(accuracy: float, rows: int | None) -> float:
    """Standard error of an accuracy measured on `rows` samples: sqrt(p(1 − p)/rows)."""
    if not rows:
        return float("nan")
    return float(np.sqrt(accuracy * (1 - accuracy) / rows))


@dataclass(frozen=True)
class PairedComparison:
    """Group A against group B over the seeds they share: differences are A − B."""

    differences: tuple[float, ...]
    mean_diff: float
    sd_diff: float
    # Student t interval of the mean difference (NaN when the differences do not vary)
    ci_low: float
    ci_high: float
    # paired t-test, two-sided (NaN when the differences do not vary: a t-test says nothing then)
    p_t: float
    p_signflip: float  # sign-flip permutation test of the mean difference, two-sided
    # the smallest p any sign-flip (distribution-free) test can give with n pairs
    p_signflip_min: float
    signflip_exact: bool  # all 2^n patterns, or a seeded Monte Carlo sample of them
    p_a_better: float  # fraction of seeds where A > B
    p_tie: float
    p_b_better: float

    @property
    def n(self) -> int:
        return len(self.differences)

    @property
    def varies(self) -> bool:
        """Whether the differences vary from seed to seed (else the t-test and its interval say
        nothing)."""
        return self.n > 1 and self.sd_diff > 0

    @property
    def p_family(self) -> float:
        """The p that Holm adjusts within the family: the paired t's, or the sign-flip test's when
        the differences do not vary (NaN below two seeds: nothing to compare)."""
        if self.n < 2:
            return float("nan")
        return self.p_t if self.varies else self.p_signflip

    @property
    def prob_improvement(self) -> float:
        """The share of seed-matched pairs in which A > B, ties counted half. (rliable's P(X > Y) is
        the Mann–Whitney probability over all pairs of runs, seeds unmatched; this is its paired
        counterpart.)"""
        return self.p_a_better + self.p_tie / 2


def compare_paired(a: ArrayLike, b: ArrayLike, spread: float = np.inf) -> PairedComparison:
    """Paired comparison of A and B, aligned pair by pair (pairs with a non-finite value are
    dropped).

    `spread` is the width of the metric's range (1 for an accuracy): the t interval is clipped to
    ±spread.
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    d = np.round(x[keep] - y[keep], DIFFERENCE_DECIMALS)
    n = len(d)
    mean = float(d.mean()) if n else float("nan")
    # equal values: exactly 0
    sd = (float(d.std(ddof=1)) if _varies(d) else 0.0) if n > 1 else float("nan")
    low, high = t_interval(d)
    p_flip, exact = sign_flip_p(d)
    better, tie, worse = improvement_fractions(x[keep], y[keep])
    return PairedComparison(
        differences=tuple(d.tolist()),
        mean_diff=mean,
        sd_diff=sd,
        ci_low=float(np.clip(low, -spread, spread)),
        ci_high=float(np.clip(high, -spread, spread)),
        p_t=paired_t_p(d),
        p_signflip=p_flip,
        p_signflip_min=2.0 ** (1 - n) if n else float("nan"),
        signflip_exact=exact,
        p_a_better=better,
        p_tie=tie,
        p_b_better=worse,
    )


def t_interval(differences: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """mean ± t_{(1+c)/2, n−1} · sd/√n of the differences, as scipy's ttest_1samp gives it (NaN
    when they do not vary: no interval then)."""
    if not _varies(differences):
        return float("nan"), float("nan")
    n, mean, sd = len(differences), differences.mean(), differences.std(ddof=1)
    # scipy.stats.t.ppf's own kernel: the lab report's intervals, without scipy.stats' import
    half = special.stdtrit(n - 1, (1 + confidence) / 2) * sd / np.sqrt(n)
    return float(mean - half), float(mean + half)


def paired_t_p(differences: np.ndarray) -> float:
    """Two-sided p of the paired t-test (scipy's, on the differences); NaN when they do not vary,
    where the t statistic is 0/0 or ±inf and tells nothing about chance."""
    if not _varies(differences):
        return float("nan")
    from scipy import stats

    return float(stats.ttest_1samp(differences, 0.0).pvalue)


def equivalence_p(differences: np.ndarray, margin: float) -> float:
    """p of the two one-sided paired t-tests (TOST) that the mean difference lies within ±margin:
    the larger of the two one-sided p's, as statsmodels' ttost_paired gives it; NaN when the
    differences do not vary (no t-test then) or there is no margin."""
    if not _varies(differences) or not margin > 0:
        return float("nan")
    from scipy import stats

    above = stats.ttest_1samp(differences, -margin, alternative="greater").pvalue
    below = stats.ttest_1samp(differences, margin, alternative="less").pvalue
    return float(max(above, below))


def sign_flip_p(differences: np.ndarray, seed: int = MONTE_CARLO_SEED) -> tuple[float, bool]:
    """Two-sided p of the sign-flip test of the mean difference (scipy's paired permutation test),
    and whether it was exact.

    Under "no difference" each pair's sign is a coin flip: p is the share of the 2^n sign
    patterns whose mean is at least as far from 0 as the observed one (a seeded Monte Carlo
    sample of them past n = EXACT_SIGN_FLIPS_UP_TO).
    """
    n = len(differences)
    if n == 0:
        return float("nan"), True
    if n == 1:  # both sign patterns lie as far from 0 (scipy wants two pairs)
        return 1.0, True
    from scipy import stats

    exact = n <= EXACT_SIGN_FLIPS_UP_TO
    test = stats.permutation_test(
        (differences,),
        _mean,
        permutation_type="samples",  # one sample: a permutation flips the signs
        n_resamples=np.inf if exact else SIGN_FLIP_RESAMPLES,
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    return float(test.pvalue), exact


def _mean(x: np.ndarray, axis: int) -> np.ndarray:
    return np.mean(x, axis=axis)


def probability_of_improvement(
    a: ArrayLike, b: ArrayLike, seed: int = MONTE_CARLO_SEED
) -> tuple[float, float, float]:
    """rliable's P(A > B): the share of all (run of A, run of B) pairs in which A is higher, ties
    counted half (the Mann–Whitney U over n·m), with a seeded percentile-bootstrap 95% interval
    that resamples each group apart."""
    from scipy import stats

    x, y = _finite(a), _finite(b)
    if len(x) == 0 or len(y) == 0:
        return float("nan"), float("nan"), float("nan")

    # scipy passes axis=-1: the runs are on the last axis
    def share(u: np.ndarray, v: np.ndarray, axis: int = -1) -> np.ndarray:
        above = (u[..., :, None] > v[..., None, :]) + 0.5 * (u[..., :, None] == v[..., None, :])
        return above.mean(axis=(-2, -1))

    point = float(share(x, y))
    if len(x) < 2 or len(y) < 2 or (np.all(x == x[0]) and np.all(y == y[0])):
        return point, point, point
    result = stats.bootstrap(
        (x, y),
        share,
        n_resamples=IMPROVEMENT_RESAMPLES,
        confidence_level=CONFIDENCE,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    low, high = result.confidence_interval
    return point, float(low), float(high)


def rows_interval(
    hits_a: np.ndarray,
    hits_b: np.ndarray,
    confidence: float = CONFIDENCE,
    seed: int = MONTE_CARLO_SEED,
) -> tuple[float, float]:
    """Percentile interval of the mean accuracy difference A − B over the seeds, the validation rows
    resampled: would the same trained models differ alike on another validation set of the same
    size? The seeds stay fixed (their own noise is the t interval's; a bootstrap of 3 seeds would
    understate it), and each resample draws the rows of every split once for all seeds and both
    groups (paired, as the rows are shared). `hits_a`, `hits_b`: 0/1 arrays of init seeds × split
    seeds × validation rows; NaNs when there is nothing to resample."""
    d = np.asarray(hits_a, dtype=float) - np.asarray(hits_b, dtype=float)
    n, splits, rows = d.shape
    if n == 0 or rows == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    # times each row is drawn
    counts = rng.multinomial(rows, np.full(rows, 1 / rows), size=(ROW_RESAMPLES, splits))
    # per resample: over rows, splits, then seeds
    means = np.einsum("skr,bkr->b", d, counts) / (rows * splits * n)
    low, high = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


def improvement_fractions(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Fractions of pairs with A > B, A = B and A < B (they sum to 1)."""
    n = len(a)
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    return float(np.mean(a > b)), float(np.mean(a == b)), float(np.mean(a < b))


def sd_interval(sd: float, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The chi-square interval of a normal sample's sd from n values: sd·√((n−1)/χ²) at both
    tails."""
    from scipy import stats

    if n < 2 or not np.isfinite(sd):
        return float("nan"), float("nan")
    tails = stats.chi2.ppf([(1 + confidence) / 2, (1 - confidence) / 2], n - 1)
    low, high = sd * np.sqrt((n - 1) / tails)
    return float(low), float(high)


def variance_sources(
    values: pd.DataFrame,
) -> tuple[float, float, tuple[float, float], tuple[float, float]]:
    """The sd over init seeds with the split fixed and the sd over split seeds with the init fixed,
    and the 95% chi-square interval of each on that source's own levels − 1 degrees of freedom:
    the columns of a crossed table share their seed effects, so pooling their degrees of freedom
    would overstate what they know.

    `values` has columns seed, split_seed, value. Each sd is the root of the mean
    within-variance: the spread that changing only that seed brings, as Bouthillier et al. (2021)
    vary one source at a time.
    """
    table = values.groupby(["seed", "split_seed"])["value"].mean().unstack()
    init, split = _pooled_sd(table, axis=0), _pooled_sd(table, axis=1)
    return init, split, sd_interval(init, table.shape[0]), sd_interval(split, table.shape[1])


def _pooled_sd(table: pd.DataFrame, axis: int) -> float:
    if table.shape[axis] < 2:
        return float("nan")
    variances = table.var(axis=axis, ddof=1).dropna()
    return float(np.sqrt(variances.mean())) if len(variances) else float("nan")


def _varies(differences: np.ndarray) -> bool:
    """At least two differences, not all equal."""
    return len(differences) > 1 and bool(differences.max() > differences.min())


def _finite(values: ArrayLike) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    return x[np.isfinite(x)]
