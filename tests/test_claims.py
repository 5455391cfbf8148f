"""The report's claims and their checks, on constructed cells that make each true and false (the
awkward cases first)."""

import numpy as np
import pandas as pd
import pytest

from lab2.core.claims import (
    CONTRADICTED,
    GRID_CHECKS,
    REPORT_ONLY,
    SUPPORTED,
    UNCHECKABLE,
    Evidence,
    accuracy_rises,
    appendix_cells,
    best_is,
    both_two_groups,
    check_claims,
    gd_near_svd,
    load_claims,
    overfits_at_lr,
    reach_99,
    same_plane_other_axes,
    train_much_above_val,
    two_groups,
)
from lab2.core.report import load_report_numbers
from tests.helpers.grids import SEEDS, grid

FACTORISATION = pd.DataFrame(
    [
        {
            "matrix": "iris",
            "gd_loss": 15.2047,
            "svd_loss": 15.2046,
            "principal_angle_1_deg": 5e-5,
            "principal_angle_2_deg": 0.05,
            "u_column_angle_1_deg": 46.0,
            "u_column_angle_2_deg": 24.0,
        }
    ]
)


def test_a_fall_by_one_seed_contradicts_a_rise_and_is_named_while_ties_do_not():
    assert accuracy_rises(grid()).holds
    tied = grid(c_0p1_1000_s0=(0.85, 0.75))  # equal to lr 0.1 × 100: a tie, not a fall
    assert accuracy_rises(tied).holds and "stay equal" in accuracy_rises(tied).evidence
    # seed 2's validation falls from lr 0.01 to 0.1 at 100 it
    fallen = accuracy_rises(grid(c_0p1_100_s2=(0.85, 0.5)))
    assert not fallen.holds
    assert "val -0.15 (seed 2, 100 iterations, up to lr 0.1)" in fallen.evidence
    # seed 1, lr 0.001: 1000 iterations below 100
    longer = accuracy_rises(grid(c_0p001_1000_s1=(0.6, 0.4)))
    assert not longer.holds and "lr 0.001, up to 1000 iterations" in longer.evidence


def test_much_greater_means_five_points_in_every_cell():
    assert train_much_above_val(grid(train=0.95, val=0.90)).holds  # exactly 0.05
    assert not train_much_above_val(grid(train=0.95, val=0.90, c_0p01_100_s0=(0.8, 0.76))).holds
    equal = train_much_above_val(grid(train=0.9, val=0.9))
    assert not equal.holds and "validation ≥ training in 18" in equal.evidence


def test_overfitting_needs_lower_validation_with_training_no_worse():
    assert not overfits_at_lr(grid()).holds  # lr 0.1 is best on both
    both_lower = {
        f"c_0p1_1000_s{s}": (0.7, 0.6) for s in SEEDS
    }  # below lr 0.01 on both: undertrained, not overfit
    assert not overfits_at_lr(grid(**both_lower)).holds
    overfit = {
        f"c_0p1_1000_s{s}": (1.0, 0.6) for s in SEEDS
    }  # trains best, validates worse than lr 0.01
    found = overfits_at_lr(grid(**overfit))
    assert (
        found.holds and "1000 iterations: validation 0.60 against 0.70 at lr 0.01" in found.evidence
    )


def test_the_best_group_allows_a_tie_and_reaching_99_needs_every_seed():
    assert not best_is(grid()).holds  # lr 0.1 × 1000 is best
    tie = {f"c_0p01_1000_s{s}": (0.9, 0.8) for s in SEEDS}
    assert best_is(grid(**tie)).holds
    top = {f"c_0p01_1000_s{s}": (1.0, 0.99) for s in SEEDS}
    assert reach_99(grid(**top)).holds
    assert not reach_99(grid(**{**top, "c_0p01_1000_s2": (1.0, 0.98)})).holds


def test_factorisation_claims_on_the_loss_gap_and_the_planes():
    assert gd_near_svd(FACTORISATION).holds
    assert not gd_near_svd(FACTORISATION.assign(gd_loss=15.2052)).holds  # 0.0006 apart
    assert same_plane_other_axes(FACTORISATION).holds
    assert not same_plane_other_axes(
        FACTORISATION.assign(principal_angle_2_deg=2.0)
    ).holds  # other planes
    assert not same_plane_other_axes(
        FACTORISATION.assign(u_column_angle_1_deg=0.1, u_column_angle_2_deg=0.2)
    ).holds  # same axes


def test_two_groups_merge_species_that_overlap_between_their_centres():
    rng = np.random.default_rng(0)

    def blob(centre: tuple[float, float], species: str) -> pd.DataFrame:
        points = rng.normal(centre, 0.3, (20, 2))
        return pd.DataFrame(points, columns=["u1", "u2"]).assign(species=species)

    apart = pd.concat([blob((0, 0), "a"), blob((5, 0), "b"), blob((0, 5), "c")])
    assert not two_groups(apart).holds and two_groups(apart).evidence.startswith("3 groups")
    overlapping = pd.concat([blob((0, 0), "a"), blob((5, 0), "b"), blob((5.3, 0.2), "c")])
    found = two_groups(overlapping)
    assert found.holds and found.evidence == "2 groups: a | b + c"
    # GD's U is SVD's times a 2×2 change of basis: the groups must not depend on it (a shear that
    # tilts a, b, c)
    turned = overlapping.assign(
        u1=overlapping["u1"] + 3 * overlapping["u2"], u2=0.2 * overlapping["u2"]
    )
    assert two_groups(turned).evidence == "2 groups: a | b + c"
    svd = apart.rename(columns={"u1": "svd_u1", "u2": "svd_u2"}).reset_index(drop=True)
    gd = turned[["u1", "u2"]].rename(columns={"u1": "gd_u1", "u2": "gd_u2"}).reset_index(drop=True)
    u = pd.concat([svd, gd], axis=1)
    assert not both_two_groups(u).holds and both_two_groups(u).evidence.startswith("SVD: 3 groups")


def test_the_report_protocol_verdict_needs_held_out_runs_to_fail_and_the_reports_numbers_to_hold():
    held_out_fails = grid()  # lr 0.01 × 1000 is not the best held out
    best_in_report = grid(**{f"c_0p01_1000_s{s}": (1.0, 1.0) for s in SEEDS})
    claims = load_claims()
    best = claims[claims["id"] == "q2_2_best"]

    def verdict(cells, appendix, report_cells=None):
        return check_claims(Evidence(FACTORISATION, cells, appendix, report_cells), best)[
            "verdict"
        ].item()

    assert verdict(best_in_report, held_out_fails) == SUPPORTED
    assert verdict(held_out_fails, best_in_report) == REPORT_ONLY
    # seed-report runs bear it out
    assert verdict(held_out_fails, held_out_fails, best_in_report) == REPORT_ONLY
    assert verdict(held_out_fails, held_out_fails) == CONTRADICTED
    assert (
        "seed-report runs"
        in check_claims(
            Evidence(FACTORISATION, held_out_fails, held_out_fails, best_in_report), best
        )["evidence"].item()
    )
    # A run under the report's protocol has no held-out cells: its own cells can support a claim
    # only under that protocol.
    assert verdict(None, held_out_fails, best_in_report) == REPORT_ONLY
    assert verdict(None, held_out_fails, held_out_fails) == CONTRADICTED
    said = check_claims(Evidence(FACTORISATION, None, held_out_fails, best_in_report), best)[
        "evidence"
    ].item()
    assert said.startswith("the report's Appendix D: ") and "held-out" not in said


def test_every_claim_names_a_check_and_the_appendix_contradicts_training_above_validation():
    claims = load_claims()
    assert claims["id"].is_unique and set(claims["section"]) == {"Q1_1", "Q1_2", "Q1_3", "Q2_2"}
    appendix = appendix_cells(load_report_numbers())
    assert len(appendix) == 18 and set(appendix["seed"]) == {1, 2, 3}
    checked = check_claims(Evidence(FACTORISATION, grid(train=0.9, val=0.9), appendix)).set_index(
        "id"
    )
    assert (checked["verdict"] == UNCHECKABLE).sum() == 2  # Lab 1's loss; no U given here
    assert set(checked.loc[claims[claims["check"].isin(GRID_CHECKS)]["id"], "verdict"]) <= {
        SUPPORTED,
        REPORT_ONLY,
        CONTRADICTED,
    }
    assert (
        "the report's Appendix D: training ≥ validation + 0.05 in 0 of 18 cells; validation ≥ "
        "training in 18"
    ) in (checked.loc["q2_2_train_above_val", "evidence"])
    assert checked.loc["q2_2_train_above_val", "verdict"] == CONTRADICTED


@pytest.mark.parametrize("check", sorted(GRID_CHECKS))
def test_grid_checks_read_the_reports_appendix_without_error(check):
    found = GRID_CHECKS[check](appendix_cells(load_report_numbers()))
    assert found.evidence and isinstance(found.holds, bool)
