"""Seed statistics against scipy.stats on the same values, brute-force enumerations, an independent
power integral and published sample sizes, a seeded simulation of power, and properties."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from lab2.core.family import (
    SeedPlan,
    holm,
    judge_family,
    paired_t_power,
    seeds_for_half_width,
    seeds_for_power,
    significant,
)
from lab2.core.stats import (
    SIGN_FLIP_RESAMPLES,
    binomial_se,
    compare_paired,
    describe,
    improvement_fractions,
    mean_interval,
    paired_t_p,
    probability_of_improvement,
    rows_interval,
    sd_interval,
    sign_flip_p,
    t_interval,
    variance_sources,
)

RNG = np.random.default_rng(20261126)
PAIRS = [(RNG.uniform(0.5, 1, n), RNG.uniform(0.5, 1, n)) for n in (2, 3, 5, 8, 12)]


def _mean_difference(x, y, axis):
    return np.mean(x - y, axis=axis)


@pytest.mark.parametrize("a, b", PAIRS)
def test_paired_t_p_and_interval_match_ttest_rel(a, b):
    oracle = stats.ttest_rel(a, b)
    interval = oracle.confidence_interval(0.95)
    d = a - b
    assert paired_t_p(d) == pytest.approx(oracle.pvalue, rel=1e-9)
    assert t_interval(d) == pytest.approx((interval.low, interval.high), rel=1e-9)
    half = stats.t.ppf(0.975, len(d) - 1) * stats.sem(d)
    assert t_interval(d) == pytest.approx((d.mean() - half, d.mean() + half), rel=1e-9)


@pytest.mark.parametrize("a, b", PAIRS)
def test_sign_flip_p_matches_scipys_exact_paired_permutation_test(a, b):
    oracle = stats.permutation_test(
        (a, b), _mean_difference, permutation_type="samples", n_resamples=np.inf, vectorized=True
    )
    p, exact = sign_flip_p(a - b)
    assert exact and p == pytest.approx(oracle.pvalue, rel=1e-12)


def test_sign_flip_by_hand_with_three_seeds():
    d = np.array([0.54, 0.46, 0.24])  # lr 0.01 minus lr 0.001 at 100 iterations, seeds 0, 1, 2
    sums = [
        s1 * 0.54 + s2 * 0.46 + s3 * 0.24 for s1, s2, s3 in itertools.product((1, -1), repeat=3)
    ]
    assert sorted(round(abs(s), 6) for s in sums) == [
        0.16,
        0.16,
        0.32,
        0.32,
        0.76,
        0.76,
        1.24,
        1.24,
    ]
    # only "all +" and "all −" reach |1.24|: the smallest p 3 seeds allow
    assert sign_flip_p(d) == (
        2 / 8,
        True,
    )
    assert compare_paired(d, np.zeros(3)).p_signflip_min == 0.25
    # a tie in magnitude counts: with 0.1, −0.1, 0.2 the sums ±0.2 and ±0.4 are 6 of the 8 patterns
    assert sign_flip_p(np.array([0.1, -0.1, 0.2]))[0] == pytest.approx(6 / 8)


def test_sign_flip_past_sixteen_seeds_is_a_seeded_monte_carlo_close_to_the_exact_test():
    a, b = RNG.uniform(0.8, 1, 17), RNG.uniform(0.78, 0.98, 17)
    d = a - b
    p, exact = sign_flip_p(d)
    assert not exact
    # Seeded: numpy's global generator in another state gives the same p.
    state = np.random.get_state()
    try:
        np.random.seed(12345)
        assert sign_flip_p(d) == (p, False)
    finally:
        np.random.set_state(state)
    # The exact p, by brute force: the share of all 2^17 sign patterns whose |sum| reaches the
    # observed one.
    # every row of ±1, all 2^17 of them
    patterns = 1 - 2 * np.indices((2,) * len(d)).reshape(len(d), -1).T
    exact_p = np.mean(np.abs(patterns @ d) >= abs(d.sum()) * (1 - 1e-12))
    # A Monte Carlo p over N patterns has standard error sqrt(p(1 - p)/N): it lies within 4 of them
    # of the exact p.
    assert p == pytest.approx(
        exact_p, abs=4 * np.sqrt(exact_p * (1 - exact_p) / SIGN_FLIP_RESAMPLES)
    )


def test_a_groups_interval_is_scipys_t_interval_clipped_to_the_metrics_range():
    x = np.array([0.92, 0.94, 0.74, 0.9, 0.88, 0.96])
    oracle = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    assert mean_interval(x) == pytest.approx(oracle, rel=1e-12)
    # the t interval reaches past 1; an accuracy cannot
    assert mean_interval([0.98, 1.0, 0.9], bounds=(0, 1))[1] == 1.0
    assert mean_interval([0.9, 0.9, 0.9]) == (0.9, 0.9) and np.isnan(mean_interval([0.9])).all()


@pytest.mark.parametrize("n", [3, 5, 10])
def test_a_groups_95_percent_interval_covers_the_true_mean_95_percent_of_the_time_on_k_of_50(
    n,
):
    # Seeds vary a cell's true accuracy (sd 0.05 around 0.85); each run is then scored on 50
    # validation rows.
    rng = np.random.default_rng(n)
    true = rng.normal(0.85, 0.05, size=(4000, n)).clip(0, 1)
    accuracies = rng.binomial(50, true) / 50
    bounds = np.array([mean_interval(row, bounds=(0.0, 1.0)) for row in accuracies])
    covered = np.mean((bounds[:, 0] <= 0.85) & (bounds[:, 1] >= 0.85))
    assert covered == pytest.approx(0.95, abs=0.02)  # 4,000 draws: a binomial sd of 0.0034


def test_describe_matches_numpy_and_warns_below_ten_seeds():
    x = [0.7, 0.9, 0.8, 0.95]
    d = describe(x, (0, 1))
    assert (d.n, d.mean, d.sd, d.min, d.max) == (
        4,
        pytest.approx(np.mean(x)),
        pytest.approx(np.std(x, ddof=1)),
        0.7,
        0.95,
    )
    assert (d.ci_low, d.ci_high) == mean_interval(x, bounds=(0, 1))
    assert "only 4 seeds" in d.warning
    assert describe(np.linspace(0.5, 0.9, 10)).warning == ""
    one = describe([0.8])
    assert one.n == 1 and np.isnan(one.ci_low) and "no interval" in one.warning
    assert describe([0.8, float("nan"), float("inf")]).n == 1


def test_binomial_standard_error_is_the_binomial_sd_over_rows():
    assert binomial_se(0.9, 50) == pytest.approx(stats.binom(50, 0.9).std() / 50)
    assert np.isnan(binomial_se(0.9, None))


def _power_by_integration(n: int, effect_size: float, alpha: float = 0.05) -> float:
    """Power of the two-sided one-sample t-test from the definition of its statistic, T = (Z + δ) /
    sqrt(V/ν) with Z standard normal, V chi-square with ν = n − 1 degrees of freedom and δ =
    effect_size·√n: P(|T| > c) = E_V[Φ(δ − c·sqrt(V/ν)) + Φ(−δ − c·sqrt(V/ν))], integrated
    numerically over V (no noncentral t)."""
    nu, delta = n - 1, effect_size * np.sqrt(n)
    c = stats.t.ppf(1 - alpha / 2, nu)

    def integrand(v):
        scale = c * np.sqrt(v / nu)
        return stats.chi2.pdf(v, nu) * (
            stats.norm.cdf(delta - scale) + stats.norm.cdf(-delta - scale)
        )

    upper = nu + 40 * np.sqrt(2 * nu) + 50  # the chi-square mass beyond is negligible
    value, _ = integrate.quad(integrand, 0, upper, points=[nu], limit=200, epsabs=1e-12)
    return value


@pytest.mark.parametrize(
    "effect, sd", [(0.4133, 0.1553), (0.1, 0.125), (0.02, 0.05), (0.02, 0.3), (5.0, 0.1)]
)
def test_seeds_for_power_is_the_fewest_seeds_with_80_percent_power(effect, sd):
    n = seeds_for_power(effect, sd)
    assert _power_by_integration(n, effect / sd) >= 0.8
    assert n == 2 or _power_by_integration(n - 1, effect / sd) < 0.8
    assert paired_t_power(n, effect / sd) == pytest.approx(
        _power_by_integration(n, effect / sd), abs=1e-8
    )


@pytest.mark.parametrize("effect_size, n", [(1.0, 10), (0.8, 15), (0.5, 34), (0.3, 90), (0.2, 199)])
def test_seeds_for_power_matches_the_published_sample_sizes_of_the_one_sample_t_test(
    effect_size, n
):
    # Cohen's d, two-sided alpha = 0.05, power 0.8: the exact sample sizes of standard power tables
    # (G*Power's one-sample t-test), which the integral above reproduces.
    assert seeds_for_power(effect_size, 1.0) == n


@pytest.mark.parametrize("effect, sd", [(0.1, 0.125), (0.05, 0.1)])
def test_power_agrees_with_a_seeded_simulation_of_paired_t_tests(effect, sd):
    n = seeds_for_power(effect, sd)
    rng = np.random.default_rng(7)
    for seeds in (n - 1, n):
        differences = rng.normal(effect, sd, size=(20_000, seeds))
        simulated = np.mean(stats.ttest_1samp(differences, 0.0, axis=1).pvalue < 0.05)
        assert simulated == pytest.approx(paired_t_power(seeds, effect / sd), abs=0.012)
    assert (
        np.mean(
            stats.ttest_1samp(rng.normal(effect, sd, size=(20_000, n)), 0.0, axis=1).pvalue < 0.05
        )
        > 0.785
    )


def test_seeds_for_a_half_width_and_when_nothing_can_be_said():
    n = seeds_for_half_width(0.02, 0.1553)
    assert (
        stats.t.ppf(0.975, n - 1) * 0.1553 / np.sqrt(n)
        <= 0.02
        < stats.t.ppf(0.975, n - 2) * 0.1553 / np.sqrt(n - 1)
    )
    assert (
        seeds_for_power(0.0, 0.1) is None
        and seeds_for_power(0.1, 0.0) is None
        and seeds_for_power(None, 0.1) is None
    )
    assert seeds_for_power(1e-9, 1.0) is None  # beyond a million seeds
    assert seeds_for_half_width(0.02, float("nan")) is None


def test_holm_matches_a_plain_step_down_loop():
    p = [0.01, 0.04, 0.03, float("nan"), 0.5, 0.005]
    assert holm(p) == pytest.approx([0.04, 0.09, 0.09, float("nan"), 0.5, 0.025], nan_ok=True)
    finite = [v for v in p if not np.isnan(v)]
    order = np.argsort(finite)
    expected, running = np.empty(len(finite)), 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(finite) - rank) * finite[index]))
        expected[index] = running
    assert holm(finite) == pytest.approx(expected)


def test_the_lab_pair_lr_001_against_lr_0001_at_100_iterations():
    a = np.array([0.70, 0.62, 0.72])  # lr 0.01, seeds 0, 1, 2 (the lab grid's val accuracies)
    b = np.array([0.16, 0.16, 0.48])  # lr 0.001
    c = compare_paired(a, b, spread=1.0)
    assert c.mean_diff == pytest.approx(0.4133, abs=1e-4)
    assert (c.ci_low, c.ci_high) == (pytest.approx(0.03, abs=0.005), pytest.approx(0.80, abs=0.005))
    assert c.p_t == pytest.approx(0.044, abs=5e-4) == stats.ttest_rel(a, b).pvalue
    assert (c.p_signflip, c.prob_improvement, c.n) == (0.25, 1.0, 3)
    (alone,) = judge_family([c], min_effect=0.02)
    assert alone.significant and alone.plan == SeedPlan()  # detected: no seeds to plan
    among_ten = judge_family([c] + [compare_paired(a, b[::-1])] * 9, min_effect=0.02)[0]
    assert not among_ten.significant and among_ten.plan.alpha == 0.005
    assert (
        among_ten.plan.seeds_needed == seeds_for_power(c.mean_diff, c.sd_diff, 0.005)
        and among_ten.plan.seeds_needed_min_effect > 100
    )


def test_the_sd_interval_covers_a_normal_samples_sd_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    for n in (3, 5, 10):
        samples = rng.normal(0.0, 0.1, size=(20_000, n))
        per_unit_sd = np.array(sd_interval(1.0, n))
        # the interval scales with the sd
        assert sd_interval(0.3, n) == pytest.approx(tuple(0.3 * per_unit_sd))
        bounds = samples.std(axis=1, ddof=1)[:, None] * per_unit_sd
        covered = np.mean((bounds[:, 0] <= 0.1) & (bounds[:, 1] >= 0.1))
        assert covered == pytest.approx(0.95, abs=0.006), n


def test_a_significant_comparison_gets_no_seed_plan():
    strong = compare_paired([0.9, 0.92, 0.95, 0.91, 0.93, 0.94], [0.5, 0.55, 0.52, 0.58, 0.5, 0.51])
    (judged,) = judge_family([strong], min_effect=0.02)
    assert judged.significant and judged.plan == SeedPlan()


def test_variance_sources_separate_the_init_seed_from_the_split():
    import pandas as pd

    # rows: init seed; columns: split seed. The split shifts everything by 0.1, the seed by 0.02 per
    # step.
    table = [[0.80, 0.90], [0.82, 0.92], [0.84, 0.94]]
    values = pd.DataFrame(
        [{"seed": s, "split_seed": k, "value": table[s][k]} for s in range(3) for k in range(2)]
    )
    by_init, by_split, _, _ = variance_sources(values)
    assert by_init == pytest.approx(np.std([0.80, 0.82, 0.84], ddof=1))
    assert by_split == pytest.approx(np.std([0.80, 0.90], ddof=1))
    assert np.isnan(variance_sources(values[values["split_seed"] == 0])[1])


def test_each_variance_sources_interval_covers_its_true_sd_95_percent_of_the_time():
    import pandas as pd

    # 3 init seeds × 3 splits, each value = 0.8 + seed effect (sd 0.05) + split effect (sd 0.02) +
    # noise (sd 0.01): with the split fixed, the values differ by seed effect and noise, sd √(0.05²
    # + 0.01²); likewise for the split.
    rng = np.random.default_rng(11)
    truth = (np.hypot(0.05, 0.01), np.hypot(0.02, 0.01))
    hits = np.zeros(2)
    grid = pd.DataFrame([{"seed": s, "split_seed": k} for s in range(3) for k in range(3)])
    for _ in range(800):
        value = (
            0.8
            + rng.normal(0, 0.05, 3)[grid["seed"]]
            + rng.normal(0, 0.02, 3)[grid["split_seed"]]
            + rng.normal(0, 0.01, 9)
        )
        _, _, init_ci, split_ci = variance_sources(grid.assign(value=value))
        hits += [init_ci[0] <= truth[0] <= init_ci[1], split_ci[0] <= truth[1] <= split_ci[1]]
    # On the pooled df of the 3 columns (6) it covered 74% and 84%: the columns share their seed
    # effects.
    # 800 draws: a binomial sd of 0.008 at 95%
    assert all(0.93 <= h / 800 <= 1.0 for h in hits), hits / 800


accuracies = st.lists(st.integers(0, 50).map(lambda k: k / 50), min_size=1, max_size=15)


@settings(max_examples=200, deadline=None)
@given(accuracies)
def test_accuracy_intervals_stay_inside_zero_one(values):
    d = describe(values, (0.0, 1.0))
    if d.n > 1:
        assert 0.0 <= d.ci_low <= d.mean + 1e-12 and d.mean - 1e-12 <= d.ci_high <= 1.0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50)), min_size=1, max_size=12))
def test_improvement_fractions_sum_to_one_and_paired_intervals_stay_in_range(pairs):
    a, b = (np.array([p[i] / 50 for p in pairs]) for i in (0, 1))
    better, tie, worse = improvement_fractions(a, b)
    assert better + tie + worse == pytest.approx(1.0)
    c = compare_paired(a, b, spread=1.0)
    assert 0.0 <= c.prob_improvement <= 1.0
    if c.varies:
        assert -1.0 <= c.ci_low <= c.ci_high <= 1.0 and 0.0 < c.p_t <= 1.0
    # the same difference on every seed (up to float noise): no t-test and no t interval, never p =
    # 0
    else:
        assert len(set(c.differences)) == 1 and np.isnan([c.ci_low, c.ci_high, c.p_t]).all()
    if c.n > 1:
        assert 2.0 ** (1 - c.n) <= c.p_signflip <= 1.0
        assert c.p_family == (c.p_t if c.varies else c.p_signflip)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.floats(0, 1), st.just(float("nan"))), min_size=1, max_size=20))
def test_holm_never_lowers_a_p_and_never_passes_one(p):
    adjusted = holm(p)
    for raw, new in zip(p, adjusted, strict=True):
        assert (np.isnan(raw) and np.isnan(new)) or raw <= new <= 1.0


def test_a_zero_mean_difference_has_sign_flip_p_one_despite_float_noise():
    # equal sums; a - b averages 5.6e-17
    a, b = (
        np.array([39, 33, 40, 46]) / 50,
        np.array([47, 30, 43, 38]) / 50,
    )
    assert (a - b).mean() != 0
    assert compare_paired(a, b).p_signflip == 1.0


@pytest.mark.parametrize("n", [2, 3, 6, 10])
def test_a_constant_difference_gets_no_t_test_and_the_sign_flip_floor_as_its_p(n):
    b = np.arange(30, 30 + n) / 50
    # one validation row better on every seed, as k/50 floats: sd ~1e-17 before rounding
    a = b + 1 / 50
    c = compare_paired(a, b)
    assert not c.varies and c.sd_diff == 0 and np.isnan([c.p_t, c.ci_low, c.ci_high]).all()
    oracle = stats.permutation_test(
        (a, b), _mean_difference, permutation_type="samples", n_resamples=np.inf, vectorized=True
    )
    assert (
        c.p_family == c.p_signflip == pytest.approx(oracle.pvalue) == pytest.approx(2.0 ** (1 - n))
    )


@pytest.mark.parametrize(
    "p",
    [  # adjusted p of exactly 0.05 first: Holm rejects at p ≤ α
        [0.025, 0.5],
        [0.05],
        [0.0125, 0.025, 0.025, 0.3],
        [0.01, 0.0125, 0.0167, 0.025, 0.05],
        [0.05, 0.05],
        [0.001, 0.3, 1.0],
    ],
)
def test_holm_and_its_rejections_agree_with_statsmodels_on_the_boundary(p):
    from statsmodels.stats.multitest import multipletests

    reject, corrected, _, _ = multipletests(p, alpha=0.05, method="holm")
    adjusted = holm(p)
    assert adjusted == pytest.approx(corrected)
    assert [significant(x) for x in adjusted] == list(reject)


def test_the_interquartile_mean_is_the_mean_of_the_middle_half_from_eight_values():
    x = [0.2, 0.9, 0.94, 0.88, 0.92, 0.5, 0.96, 0.9]
    # the 2 lowest and 2 highest left out
    assert describe(x).iqm == pytest.approx(np.mean([0.88, 0.9, 0.9, 0.92]))
    assert np.isnan(describe(x[:7]).iqm)


def test_rliables_probability_of_improvement_counts_every_pair_of_runs_ties_half():
    a, b = np.array([0.9, 0.8, 0.8]), np.array([0.8, 0.7, 0.95, 0.6])
    by_hand = np.mean([1.0 if x > y else 0.5 if x == y else 0.0 for x in a for y in b])
    point, low, high = probability_of_improvement(a, b)
    assert point == by_hand == pytest.approx(stats.mannwhitneyu(a, b).statistic / 12)
    assert low <= point <= high and probability_of_improvement(a, b) == (point, low, high)  # seeded
    rng = np.random.default_rng(3)  # 4,000 resamples of each group drawn here, apart from the code
    resampled = [(rng.choice(a, 3)[:, None], rng.choice(b, 4)[None, :]) for _ in range(4000)]
    shares = [np.mean(x > y) + 0.5 * np.mean(x == y) for x, y in resampled]
    assert (low, high) == pytest.approx(tuple(np.percentile(shares, [2.5, 97.5])), abs=0.05)


def test_the_rows_interval_is_scipys_bootstrap_of_the_rows_with_the_seeds_held_fixed():
    rng = np.random.default_rng(17)
    # one seed, one split: rows alone vary
    a, b = (
        rng.random((1, 1, 50)) < 0.9,
        rng.random((1, 1, 50)) < 0.75,
    )
    d = (a.astype(float) - b.astype(float)).ravel()
    oracle = stats.bootstrap(
        (d,), np.mean, method="percentile", n_resamples=19_999, rng=np.random.default_rng(1)
    ).confidence_interval
    assert rows_interval(a, b) == pytest.approx((oracle.low, oracle.high), abs=0.015)
    # Each seed's rows all differ alike (whole-row hits): another validation set changes nothing.
    per_seed = np.array([1, 1, 0, 1, -1, 1, 0, 1])
    a = np.broadcast_to((per_seed >= 0)[:, None, None], (8, 2, 30))
    b = np.broadcast_to((per_seed <= 0)[:, None, None], (8, 2, 30))
    assert rows_interval(a, b) == pytest.approx((per_seed.mean(), per_seed.mean()), abs=1e-12)
    # Several seeds: the mean of their row differences, the rows drawn once per resample for every
    # seed (paired).
    a, b = rng.random((4, 1, 50)) < 0.85, rng.random((4, 1, 50)) < 0.8
    d = (a.astype(float) - b.astype(float))[:, 0, :].mean(axis=0)  # per row, the mean over seeds
    oracle = stats.bootstrap(
        (d,), np.mean, method="percentile", n_resamples=19_999, rng=np.random.default_rng(2)
    ).confidence_interval
    assert rows_interval(a, b) == pytest.approx((oracle.low, oracle.high), abs=0.015)
    assert np.isnan(
        rows_interval(np.ones((3, 1, 0)), np.ones((3, 1, 0)))
    ).all()  # no rows: nothing to resample
