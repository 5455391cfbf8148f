"""The words of a paired comparison: what the data can and cannot tell about group A against group
B.

A comparison is a record first (a row of the pair table, lab2.core.pairs): its numbers, its call
on a fixed scale of words, and its caveats as codes. Everything that shows a verdict renders that
record: one plain line (verdict_line), the call alone in a table (call_words), the caveats once
under the table (caveat_notes), and the full reasoning on demand (reasoning).

The scale, each word by one rule (docs/statistics.md):

- *clearly better* / *clearly worse*: the family's test rejects (Holm), and the validation rows'
  view, where there is one, agrees on the sign;
- *better / worse on these seeds* (not yet settled): the test alone rejects but not within the
  family, or the family's does and another validation set of this size could erase it;
- *no difference worth having*: the equivalence test (two one-sided t-tests against
  ±--min-effect) holds within the family (Holm); never because a test failed to reject;
- *too close to call*: none of these; the line says how many seeds would settle it;
- *the same on every seed*, *too few seeds*: no test is needed, or none can be made.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from lab2.core.family import InFamily, SeedPlan, significant
from lab2.core.stats import ALPHA, PairedComparison

CLEARLY_BETTER, CLEARLY_WORSE = "clearly better", "clearly worse"
ON_THESE_SEEDS = "{side} on these seeds"  # not yet settled
NO_DIFFERENCE = "no difference worth having"
TOO_CLOSE = "too close to call"
SAME = "the same on every seed"
TOO_FEW = "too few seeds"
SETTLED = (CLEARLY_BETTER, CLEARLY_WORSE, NO_DIFFERENCE)

# Caveats by code, each said once under the table whose rows carry it (caveat_notes), in this
# order; filled from the first row concerned.
SEED_FLOOR = "seed_floor"  # no distribution-free test can go below 2^(1−n) with n seeds
CONSTANT = "constant_difference"  # the same non-zero difference on every seed: no t-test
HOLM_STOPPED = "holm_stopped_earlier"  # the step's interval excludes 0, Holm stopped before it
ROWS_ERASE = "rows_could_erase"  # another validation set of this size could erase the sign
PICKED = "picked_on_these_seeds"  # the best group was chosen on the seeds it is compared on
IN_FAMILY = "judged_in_family"  # a named pair, judged within the grid's family
SPLITS_AVERAGED = "init_seeds_over_splits"  # crossed design: the units are the init seeds
CAVEATS = {
    SEED_FLOOR: "with {n} seeds no distribution-free test can go below p = {floor:.3g}",
    CONSTANT: (
        "the difference is the same on every seed, so no t-test: the sign-flip test judges it"
    ),
    HOLM_STOPPED: (
        "the interval at its Holm step excludes 0, but the step-down stopped at a smaller p"
    ),
    ROWS_ERASE: "another validation set of this size could erase the difference",
    PICKED: "the best group was picked on these same seeds",
    IN_FAMILY: "judged among the grid's {family} comparisons (Holm)",
    SPLITS_AVERAGED: "the n column counts init seeds, each averaged over its {splits} split seeds",
}

SHORT_KEYS = {"iterations": "it"}  # as `lab2.group` labels (and so MLflow) show a key
SEEDS_SAID = 1000  # a line says "1000+" past this many seeds to settle (the table has the number)
AXES = ("lr", "iterations", "it")  # the grid's axes, as labels name them


def call(
    c: PairedComparison,
    judged: InFamily,
    metric: str = "val_accuracy",
    rows: tuple[float, float] = (float("nan"), float("nan")),
) -> str:
    """The comparison's words on the scale above (A's side: "better" is by the metric's
    direction)."""
    if c.n < 2:
        return TOO_FEW
    if all(d == 0 for d in c.differences):
        return SAME
    if judged.equivalent:
        return NO_DIFFERENCE
    better = (c.mean_diff > 0) == higher_is_better(metric)
    if judged.significant and rows_agree(c.mean_diff, rows):
        return CLEARLY_BETTER if better else CLEARLY_WORSE
    side = "better" if better else "worse"
    if judged.significant or significant(c.p_family):
        return ON_THESE_SEEDS.format(side=side)
    return TOO_CLOSE


def rows_agree(mean_diff: float, rows: tuple[float, float]) -> bool:
    """Whether the validation rows' interval keeps the difference's sign (True without one)."""
    low, high = rows
    if math.isnan(low):
        return True
    return low > 0 if mean_diff > 0 else high < 0


def caveats(
    c: PairedComparison,
    judged: InFamily,
    kind: str = "",
    splits: int = 1,
    rows: tuple[float, float] = (float("nan"), float("nan")),
) -> tuple[str, ...]:
    """The caveat codes of a comparison, in the order their notes are said."""
    if c.n < 2:
        return ()
    codes = []
    if c.p_signflip_min > ALPHA:
        codes.append(SEED_FLOOR)
    if not c.varies and any(d != 0 for d in c.differences):
        codes.append(CONSTANT)
    if not judged.significant and (judged.ci_low > 0 or judged.ci_high < 0):
        codes.append(HOLM_STOPPED)
    if judged.significant and not rows_agree(c.mean_diff, rows):
        codes.append(ROWS_ERASE)
    if kind == "vs best":
        codes.append(PICKED)
    if kind == "named" and judged.size > 1:
        codes.append(IN_FAMILY)
    if splits > 1:
        codes.append(SPLITS_AVERAGED)
    return tuple(codes)


def call_words(record: Mapping[str, Any]) -> str:
    """A record's call as a table's verdict column says it: "too close to call", "no difference
    worth having (within ±0.02)", "the same on all 3 seeds"."""
    said, n = record["call"], int(record["n"])
    if said == TOO_FEW:
        return f"{n} shared seed{'s' if n != 1 else ''}, too few to compare"
    if said == SAME:
        return f"the same on all {n} seeds"
    if said == NO_DIFFERENCE:
        return f"{said} (within ±{float(record['min_effect']):g})"
    return str(said)


def verdict_line(record: Mapping[str, Any]) -> str:
    """The record as one plain line: "lr=0.1 vs lr=0.01 at it=1000: +0.07 val acc, too close to
    call (~27 seeds to settle)"; what the groups share beyond the grid's axes (the setup) is
    left to the table."""
    first, second, where = contrast_labels(
        short_label(str(record["a"])), short_label(str(record["b"])), AXES
    )
    metric = metric_words(str(record["metric"]))
    head = f"{first} vs {second}{where}"
    if record["call"] == SAME:
        return f"{head}: the same {metric} on all {int(record['n'])} seeds"
    if record["call"] == TOO_FEW:
        return f"{head}: {call_words(record)}"
    change = readable_difference(float(record["mean_diff"]), str(record["metric"]))
    settle = "" if record["call"] in SETTLED else _settle(record.get("seeds_needed"))
    return f"{head}: {change} {metric}, {call_words(record)}{settle}"


def metric_words(metric: str) -> str:
    """A metric as a line names it: "val acc", "train loss"."""
    return metric.replace("_accuracy", " acc").replace("_", " ")


def _settle(seeds_needed: Any) -> str:
    """ "(~27 seeds to settle)", an estimate: seeds for 80% power at the family's level if the true
    difference were the one seen (planning, not a fact; past SEEDS_SAID, "1000+"); nothing
    without an estimate (None, NaN, pandas' NA)."""
    try:
        seeds = float(seeds_needed)  # a Python or a numpy number
    except (TypeError, ValueError):
        return ""
    if not math.isfinite(seeds):
        return ""
    count = f"{SEEDS_SAID}+" if seeds > SEEDS_SAID else str(int(seeds))
    return f" (~{count} seeds to settle)"


def readable_difference(value: float, metric: str) -> str:
    """A difference as a line reads it: accuracies to 2 decimals, losses to 2 significant digits;
    a difference that is not 0 never reads as +0.00."""
    text = f"{value:+.2f}" if "accuracy" in metric else f"{value:+.2g}"
    if value != 0 and math.isfinite(value) and float(text) == 0:
        return f"{value:+.1g}"
    return text


def caveat_notes(
    records: Sequence[Mapping[str, Any]], numbers: Sequence[int] | None = None
) -> list[str]:
    """Each caveat of the records said once, naming the rows it concerns (by `numbers`, as the
    table numbers them) unless it concerns them all."""
    numbers = list(numbers) if numbers is not None else list(range(1, len(records) + 1))
    notes = []
    for code in CAVEATS:
        concerned = [(k, r) for k, r in zip(numbers, records, strict=True) if code in _codes(r)]
        if not concerned:
            continue
        which = (
            ""
            if len(concerned) == len(records)
            else f"Row{'s' if len(concerned) > 1 else ''} {_numbers([k for k, _ in concerned])}: "
        )
        said = _caveat_text(code, concerned[0][1])
        notes.append(f"{which}{said[0].upper() if not which else said[0]}{said[1:]}.")
    return notes


def _codes(record: Mapping[str, Any]) -> list[str]:
    codes = record.get("caveats")
    return str(codes).split(";") if isinstance(codes, str) and codes else []


def _numbers(numbers: Sequence[int]) -> str:
    return ", ".join(map(str, numbers))


def _caveat_text(code: str, record: Mapping[str, Any]) -> str:
    n = int(record["n"])
    return CAVEATS[code].format(
        n=n,
        floor=2.0 ** (1 - n),
        family=record.get("family"),
        splits=record.get("n_split_seeds"),
    )


def short_label(label: str) -> str:
    """A group's label with its keys as `lab2.group` shows them: "lr=0.1 iterations=100" as "lr=0.1
    it=100"."""
    return " ".join(
        SHORT_KEYS.get(k, k) + sep + v
        for k, sep, v in (token.partition("=") for token in label.split())
    )


def reasoning(
    a: str,
    b: str,
    c: PairedComparison,
    judged: InFamily,
    metric: str = "val_accuracy",
    min_effect: float | None = None,
    kind: str = "",
    rows: tuple[float, float] = (float("nan"), float("nan")),
) -> str:
    """The reasoning behind a comparison's call, in one sentence: judged within its family (Holm's
    p, and the interval at its Holm step's level); with the hits per validation row, whether the
    difference would survive another validation set of the same size (`rows`: that interval); a
    pair the user named, its p alone. Its caveats are said apart (caveats)."""
    said = _judged(a, b, c, judged, metric, min_effect)
    if c.n > 1 and not all(d == 0 for d in c.differences) and not math.isnan(rows[0]):
        said += f"; {rows_sentence(rows, judged)}"
    if kind == "named" and judged.size > 1 and c.n > 1:
        return f"{said}; alone, as if named before seeing the grid: p = {c.p_family:.3g}"
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
    signflip = f"; sign-flip p = {c.p_signflip:.3g}" if c.p_signflip_min <= ALPHA else ""
    change = f"{c.mean_diff:{number}}"
    counted = f"{tests} over {family} comparisons" if family > 1 else tests
    if judged.equivalent:
        return (
            f"{first} and {second}{where} are equivalent within ±{min_effect:g}: {change} ({ci}; "
            f"two one-sided t-tests p = {judged.p_equivalence:.3g}"
            + (f", Holm p = {judged.p_equivalence_holm:.3g}" if family > 1 else "")
            + ")"
        )
    if judged.significant:
        return (
            f"{first} {'beats' if better else 'trails'} {second}{where} by {change} ({ci}; "
            f"{counted}; {wins}{signflip})"
        )
    if significant(c.p_t):
        side = "ahead of" if better else "behind"
        return (
            f"{first} {side} {second}{where} by {change}, not significant over {family} "
            f"comparisons ({ci}; {tests}{signflip})"
        )
    return (
        f"cannot tell {first} from {second}{where}: {change} ({ci}; {counted}{signflip}); "
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


def contrast_labels(a: str, b: str, keys: Sequence[str] = ()) -> tuple[str, str, str]:
    """What differs between two labels, and " at …" for what they share (of `keys` only, if
    given): ("lr=0.01", "lr=0.001", " at iterations=100")."""
    tokens_a, tokens_b = a.split(), b.split()
    if len(tokens_a) != len(tokens_b) or tokens_a == tokens_b:
        return a, b, ""
    differ = [i for i, (x, y) in enumerate(zip(tokens_a, tokens_b, strict=False)) if x != y]
    shared = [
        x
        for i, x in enumerate(tokens_a)
        if i not in differ and (not keys or x.partition("=")[0] in keys)
    ]
    where = f" at {' '.join(shared)}" if shared else ""
    return " ".join(tokens_a[i] for i in differ), " ".join(tokens_b[i] for i in differ), where
