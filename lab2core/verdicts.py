"""The words of a paired comparison: what the data can and cannot tell about group A against group
B."""

from __future__ import annotations

import math

from lab2.core.family import InFamily, SeedPlan, significant
from lab2.core.stats import ALPHA, PairedComparison


def verdict(
    a: str,
    b: str,
    c: PairedComparison,
    judged: InFamily,
    metric: str = "val_accuracy",
    min_effect: float | None = None,
    kind: str = "",
    splits: int = 1,
    rows: tuple[float, float] = (float("nan"), float("nan")),
) -> str:
    """What the paired data can and cannot tell about A against B, in one sentence, judged within
    its family (Holm's p, and the interval at its Holm step's level); a pair the user named, or
    the best group against another, says how it was chosen; over several split seeds, what its
    seeds count; with the hits per validation row, whether the difference would survive another
    validation set of the same size (`rows`: that interval)."""
    said = _judged(a, b, c, judged, metric, min_effect)
    if c.n > 1 and not all(d == 0 for d in c.differences) and not math.isnan(rows[0]):
        said += f"; {rows_sentence(rows, judged)}"
    if splits > 1:
        said += f"; n = {c.n} init seeds, each averaged over its split seeds ({splits} in all)"
    if kind == "named" and judged.size > 1 and c.n > 1:
        return f"{said}; alone, as if named before seeing the grid: p = {c.p_family:.3g}"
    if kind == "vs best":
        return f"{said}; the best group was picked on these same seeds"
    return said


def _judged(
    a: str, b: str, c: PairedComparison, judged: InFamily, metric: str, min_effect: float | None
) -> str:
    first, second, where = contrast_labels(a, b)
    if c.n < 2:
        return f"{first} vs {second}{where}: {c.n} shared seed(s), too few to compare"
    if all(d == 0 for d in c.differences):
        return f"{first} and {second}{where} give the same {metric} on all {c.n} seeds"
    if not c.varies:
        return _constant_verdict(first, second, where, c, judged, metric)
    number = number_format(metric)
    ci = f"{interval_name(judged)} {bound(judged.ci_low, metric)} … {bound(judged.ci_high, metric)}"
    family = judged.size
    tests = f"paired t p = {c.p_t:.3g}" + (f", Holm p = {judged.p_holm:.3g}" if family > 1 else "")
    better = (c.mean_diff > 0) == higher_is_better(metric)
    won = c.p_a_better if higher_is_better(metric) else c.p_b_better
    wins = (
        f"{first} {'higher' if higher_is_better(metric) else 'lower'} on {round(won * c.n)}/{c.n} "
        "seeds"
    )
    floor = _floor(c)
    change = f"{c.mean_diff:{number}}"
    counted = f"{tests} over {family} comparisons" if family > 1 else tests
    if judged.significant:
        return (
            f"{first} {'beats' if better else 'trails'} {second}{where} by {change} ({ci}; "
            f"{counted}; {wins}; {floor})"
        )
    why = (
        "; its interval excludes 0, but Holm's step-down stopped at a smaller p"
        if judged.ci_low > 0 or judged.ci_high < 0
        else ""
    )
    if significant(c.p_t):
        side = "ahead of" if better else "behind"
        return (
            f"{first} {side} {second}{where} by {change}, not significant over {family} "
            f"comparisons ({ci}; {tests}; {floor}){why}"
        )
    if min_effect and -min_effect < judged.ci_low and judged.ci_high < min_effect:
        return (
            f"{first} and {second}{where} are equivalent within ±{min_effect:g}: {change} ({ci}; "
            f"{counted})"
        )
    return (
        f"cannot tell {first} from {second}{where}: {change} ({ci}; {counted}; {floor}); "
        f"{planning(judged.plan, change)}"
    )


def rows_sentence(rows: tuple[float, float], judged: InFamily) -> str:
    """The validation rows' view: the interval with the rows resampled (the trained models fixed),
    and whether another validation set of the same size could erase the difference (the verdict
    itself keeps the rows fixed)."""
    low, high = rows
    span = f"{interval_name(judged)} {bound(low)} … {bound(high)}"
    if low > 0 or high < 0:
        return (
            f"validation rows resampled: {span}, the sign holds on another validation set of this "
            "size"
        )
    return f"validation rows resampled: {span}, another validation set of this size could erase it"


def planning(plan: SeedPlan, change: str) -> str:
    """What a new run would need, worded as the hypothesis it is."""
    if plan.seeds_needed is None:
        return "no estimate of the seeds needed"
    low, high = plan.seeds_needed_low, plan.seeds_needed_high
    span = f"{low} to {high}" if low and high and low != high else f"about {plan.seeds_needed}"
    return (
        f"if the true difference were {change}, {span} seeds would detect it with 80% power "
        f"at α = {plan.alpha:.2g} "
        f"(the range: the sd's 95% interval; {plan.seeds_needed} at the sd seen)"
    )


def interval_name(judged: InFamily) -> str:
    """ "95% CI" alone; within a family, the level of the comparison's Holm step: "Holm-step 99.5%
    CI"."""
    level = f"{100 * judged.confidence:.4g}% CI"
    return level if judged.size == 1 else f"Holm-step {level}"


def _constant_verdict(
    first: str, second: str, where: str, c: PairedComparison, judged: InFamily, metric: str
) -> str:
    """The differences are the same non-zero value on every seed: no t-test (its sd is 0), only the
    sign-flip test, whose smallest possible p with n seeds is 2^(1−n)."""
    side = "higher" if c.mean_diff > 0 else "lower"
    gap = f"{abs(c.mean_diff):{number_format(metric).removeprefix('+')}}"
    better = (c.mean_diff > 0) == higher_is_better(metric)
    family = judged.size
    tests = f"sign-flip p = {c.p_signflip:.3g}" + (
        f", Holm p = {judged.p_holm:.3g} over {family} comparisons" if family > 1 else ""
    )
    said = (
        f"{metric} {side} on every one of {c.n} seeds by exactly {gap}; no t-test: the difference "
        "does not vary"
    )
    if judged.significant:
        return f"{first} {'beats' if better else 'trails'} {second}{where}: {said} ({tests})"
    if c.p_signflip_min > ALPHA:
        return (
            f"{first} vs {second}{where}: {said}; with {c.n} seeds no test can separate this from "
            f"chance below p = {c.p_signflip_min:.3g}"
        )
    return f"{first} vs {second}{where}: {said}; not significant ({tests})"


def _floor(c: PairedComparison) -> str:
    """The distribution-free test's p, or the floor it cannot go below with this few seeds."""
    if c.p_signflip_min > ALPHA:
        return floor_caveat(c.n, c.p_signflip_min)
    return f"sign-flip p = {c.p_signflip:.3g}"


def floor_caveat(n: int, p_min: float) -> str:
    """What n seeds cannot show, whatever the data: p_min = 2^(1−n), the sign-flip test's smallest
    p."""
    return f"with {n} seeds no distribution-free test can go below p = {p_min:.3g}"


def higher_is_better(metric: str) -> bool:
    """Accuracies are better higher, losses lower."""
    return "loss" not in metric


def number_format(metric: str) -> str:
    """How a difference of `metric` is written: accuracies to 3 decimals, losses to 3 significant
    digits."""
    return "+.3f" if "accuracy" in metric else "+.3g"


def bound(value: float, metric: str = "val_accuracy") -> str:
    """An interval's end as written: like a difference, but an end that is not 0 never reads as
    +0.000 (more decimals then), since whether an interval excludes 0 is what its verdict turns
    on."""
    text = f"{value:{number_format(metric)}}"
    if value != 0 and math.isfinite(value) and float(text) == 0:
        return f"{value:+.{math.ceil(-math.log10(abs(value)))}f}"
    return text


def contrast_labels(a: str, b: str) -> tuple[str, str, str]:
    """What differs between two labels, and " at …" for what they share: ("lr=0.01", "lr=0.001", "
    at iterations=100")."""
    tokens_a, tokens_b = a.split(), b.split()
    if len(tokens_a) != len(tokens_b) or tokens_a == tokens_b:
        return a, b, ""
    differ = [i for i, (x, y) in enumerate(zip(tokens_a, tokens_b, strict=False)) if x != y]
    shared = [x for i, x in enumerate(tokens_a) if i not in differ]
    where = f" at {' '.join(shared)}" if shared else ""
    return " ".join(tokens_a[i] for i in differ), " ".join(tokens_b[i] for i in differ), where
