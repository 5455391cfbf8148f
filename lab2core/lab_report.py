"""The lab's report, written from what a lab2 parent run holds: each question answered beside the
original report's number, every claim of the original checked, and what the runs show that the
report missed.

Pure: it reads a `RunResults` (the run's params, tables and figure paths, read by the caller) and
recomputes nothing the run holds. Numbers are rounded for reading; the run's CSVs keep every
digit.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from markdown_it import MarkdownIt

from lab2.core.claims import (
    IRIS_DATASETS,
    NOT_JUDGED,
    Evidence,
    appendix_cells,
    check_claims,
    data_matrix,
)
from lab2.core.data import LAB_MATRIX_NAME
from lab2.core.describe import display_table, gd_note, markdown_table, pairs_markdown
from lab2.core.factorise import CONVERGED_WITHIN
from lab2.core.report import compare_with_report, load_report_numbers

LAB_CELLS = {
    (lr, it) for lr in (0.1, 0.01, 0.001) for it in (100, 1000)
}  # the lab's grid, which the report's numbers are of
# GD's loss within this fraction of the optimum's: converged, float32 rounding apart
CONVERGED = 1e-5
# Cells of equal lr × iterations "end the same" when every accuracy and loss is this close, seed by
# seed.
SAME_TIME = 1e-3
# The run's tables the report reads, by the key the caller gives each, and in words.
TABLES = {
    "factorisation": "Q1's table",
    "cells": "the grid's cells",
    "seed_summary": "the seed summary",
    "seed_pairs": "the paired comparisons",
    # Runs older than these lack them: U's rows (one claim then goes unchecked), Q1_1's matrices.
    "u_rows": "U's rows",
    "reconstruction": "the lab matrix reconstructed",
}
NEEDED_TABLES = ("factorisation", "cells", "seed_summary", "seed_pairs")
# the report's Figure 2
REPORT_RECONSTRUCTION = Path(__file__).with_name("reference") / "report_reconstruction.csv"
NEEDED_PARAMS = (
    "dataset",
    "hidden",
    "protocol",
    "scaling",
    "gd_lr",
    "gd_epochs",
    "best_lr",
    "best_iterations",
    "best_seed",
)
REPORT_STYLE = (
    "body{font-family:sans-serif;font-size:15px;max-width:1100px;margin:2em auto;padding:0 "
    "1em;line-height:1.45}"
    " table{border-collapse:collapse;margin:1em 0;font-size:13px} td,th{border:1px solid "
    "#ccc;padding:3px 6px;vertical-align:top}"
    " blockquote{border-left:4px solid #ccc;margin:1em 0;padding:0 1em;color:#444} "
    "img{max-width:100%}"
    " @media print{body{max-width:none} img{page-break-inside:avoid}}"
)
FIGURES = {
    "u_scatter": "U from SVD and from GD, coloured by species",
    "grid_summary": "every cell's accuracies",
    "val_accuracy_vs_lr": "validation accuracy over seeds, mean and 95% interval",
    "mean_learning_curves": "training loss, mean over seeds",
    "paired_differences": "the groups compared seed by seed",
}


@dataclass(frozen=True)
class RunResults:
    """What the report reads from a lab2 parent run."""

    run_id: str
    run_url: str
    params: Mapping[str, str]
    tables: Mapping[str, pd.DataFrame]  # key of TABLES → the run's table
    figures: Mapping[str, str]  # figure name (of FIGURES) → the run's file the report links
    model_uri: str | None


def missing_numbers(results: RunResults) -> list[str]:
    """What the report needs and the run lacks, each said once: the tables and params, Q1's two
    matrices, the lab's six cells."""
    missing = [TABLES[name] for name in NEEDED_TABLES if name not in results.tables]
    missing += [f"the param {name}" for name in NEEDED_PARAMS if name not in results.params]
    if "seed_pairs" in results.tables and "call" not in results.tables["seed_pairs"].columns:
        missing.append("the paired comparisons' calls (the run predates them)")
    if "factorisation" in results.tables:
        matrices = set(results.tables["factorisation"]["matrix"])
        missing += (
            [f"Q1's loss of the lab's matrix {LAB_MATRIX_NAME}"]
            if LAB_MATRIX_NAME not in matrices
            else []
        )
        missing += ["Q1's loss of the dataset's matrix"] if not matrices - {LAB_MATRIX_NAME} else []
    if "cells" in results.tables:
        cells = results.tables["cells"]
        held = {
            (float(lr), int(it)) for lr, it in zip(cells["lr"], cells["iterations"], strict=True)
        }
        missing += [
            f"the cell lr {lr:g} × {it} iterations"
            for lr, it in sorted(LAB_CELLS - held, reverse=True)
        ]
    return missing


def lab_report(results: RunResults) -> str:
    """The report as markdown, from a run that `missing_numbers` finds complete."""
    factorisation = results.tables["factorisation"]
    lab1, data = factorisation.set_index("matrix").loc[LAB_MATRIX_NAME], data_matrix(factorisation)
    cells = results.tables["cells"]
    lab_cells = cells[
        [
            (float(lr), int(it)) in LAB_CELLS
            for lr, it in zip(cells["lr"], cells["iterations"], strict=True)
        ]
    ]
    published = load_report_numbers()
    # else the run's cells are the report's protocol's
    held_out = results.params["protocol"] == "held-out"
    evidence = Evidence(
        factorisation,
        lab_cells if held_out else None,
        appendix_cells(published),
        None if held_out else lab_cells,
        results.tables.get("u_rows"),
        results.params["dataset"],
    )
    sections = [
        _title(results),
        _q1_1(lab1, published, results.tables.get("reconstruction"), results.params),
        _q1_2(data, published, results.params),
        _q1_3(data, results.figures),
        _q2_1(results.params),
        _q2_2(results, cells),
        "## The original report's numbers beside lab2's\n\n"
        + markdown_table(
            compare_with_report(
                published, _ours(lab1, data, lab_cells, results.params), results.params["dataset"]
            )
        ),
        _claims(check_claims(evidence), _data_name(results.params)),
        _missed(cells),
    ]
    return "\n\n".join(sections) + "\n"


def report_html(markdown: str, figures: Mapping[str, bytes]) -> str:
    """The report as one self-contained HTML page: its figures (artifact path → PNG bytes) embedded,
    styled for reading and printing."""
    body = MarkdownIt("commonmark").enable("table").render(markdown)
    for path, png in figures.items():
        body = body.replace(
            f'src="{path}"', f'src="data:image/png;base64,{base64.b64encode(png).decode()}"'
        )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Lab 2 "
        f"report</title><style>{REPORT_STYLE}</style>"
        f"</head><body>{body}</body></html>"
    )


def figures_as_notes(markdown: str) -> str:
    """The report where its figures cannot be shown (a Prefect artifact): each image a note naming
    the run's file."""
    return re.sub(
        r"!\[([^]]*)\]\(([^)]+\.png)\)",
        r"*Figure: \1 (`\2` on the MLflow run, embedded in the HTML report).*",
        markdown,
    )


def _title(results: RunResults) -> str:
    p = results.params
    where = (
        f"In the MLflow UI that `lab2 ui` serves, the run is at `{results.run_url}`"
        if results.run_url.startswith("#")
        else f"[The run in MLflow]({results.run_url})"
    )
    return (
        f"# Lab 2 — PyTorch autograd, answered from lab2 run `{results.run_id}`\n\n"
        f"{where}. Dataset `{p['dataset']}`, MLP protocol `{p['protocol']}`. Each section puts "
        "the original report's number beside lab2's; numbers here are rounded for reading, "
        "the run's CSVs keep every digit."
    )


def _q1_1(
    lab1: pd.Series,
    published: pd.DataFrame,
    reconstruction: pd.DataFrame | None,
    params: Mapping[str, str],
) -> str:
    report = _published(published, "q1_1_gd_loss")
    return (
        "## Q1_1 — the 3×3 matrix at rank 2, by gradient descent with autograd\n\n"
        "| | original report | lab2 |\n|---|---|---|\n"
        f"| GD loss, ‖A − UVᵀ‖² | {report:.4f} | {lab1['gd_loss']:.4f} |\n"
        f"| Eckart–Young optimum σ₃² (truncated SVD) | — | {lab1['svd_loss']:.4f} |\n\n"
        f"{_convergence(lab1, params)} The report's loss is {report - lab1['svd_loss']:+.4f} "
        "above the optimum: its run had not "
        "converged (the report calls the sum of squares an MSE)."
        "\n\n" + _reconstruction(reconstruction)
    )


def _reconstruction(entries: pd.DataFrame | None) -> str:
    """The matrix and its reconstructions row by row: the report's (its Figure 2), lab2's GD and
    SVD's."""
    if entries is None:
        return "The run holds no reconstruction of the matrix (runs before reconstruction.csv)."
    report = pd.read_csv(REPORT_RECONSTRUCTION)
    merged = entries.merge(
        report[["row", "column", "value"]].rename(columns={"value": "report"}),
        on=["row", "column"],
        how="left",
    )
    matrices = {
        "A": "a",
        "original report's UVᵀ": "report",
        "lab2's GD UVᵀ": "gd",
        "truncated SVD (the optimum)": "svd",
    }
    rows = [
        {
            "row": int(row) + 1,
            **{
                name: ", ".join(f"{v:.4f}" for v in part[column])
                for name, column in matrices.items()
            },
        }
        for row, part in merged.sort_values(["row", "column"]).groupby("row")
    ]
    gd_gap, report_gap = (
        (merged["gd"] - merged["svd"]).abs().max(),
        (merged["report"] - merged["svd"]).abs().max(),
    )
    return (
        "The reconstruction, row by row:\n\n" + markdown_table(pd.DataFrame(rows)) + "\n\n"
        f"lab2's GD reconstruction is within {gd_gap:.1g} of the optimum's in every entry; "
        f"the report's, within {report_gap:.2g}."
    )


def _q1_2(iris: pd.Series, published: pd.DataFrame, params: Mapping[str, str]) -> str:
    gd, svd = _published(published, "q1_2_gd_loss"), _published(published, "q1_2_svd_loss")
    data = "Iris" if params["dataset"] in IRIS_DATASETS else f"`{_data_name(params)}`"
    return (
        f"## Q1_2 — gradient descent against truncated SVD on the centred {data} data\n\n"
        "| | original report | lab2 |\n|---|---|---|\n"
        f"| GD loss | {gd:.4f} | {iris['gd_loss']:.4f} |\n| SVD loss (the rank-2 optimum) | "
        f"{svd:.4f} | {iris['svd_loss']:.4f} |\n"
        f"| GD − SVD | {gd - svd:+.4f} | {iris['gd_loss'] - iris['svd_loss']:+.5f} |\n\n"
        f"{_convergence(iris, params)} {_dataset_note(params['dataset'])}"
    )


def _convergence(matrix: pd.Series, params: Mapping[str, str]) -> str:
    """Whether lab2's GD reached the optimum, float32 rounding apart, or diverged."""
    if not math.isfinite(matrix["gd_loss"]):
        note = gd_note(matrix.to_dict() | {"matrix": matrix.name}) if "gd" in matrix else None
        return f"lab2's {note}." if note else "lab2's GD diverged."
    gap = matrix["gd_loss"] - matrix["svd_loss"]
    if gap <= CONVERGED * matrix["svd_loss"]:
        return (
            f"lab2's GD loss is {abs(gap):.1g} from the optimum (float32 rounding): it converged."
        )
    stops = (
        f"lab2's GD stops {gap:.4g} above the optimum ({gap / matrix['svd_loss']:.2%}) after "
        f"{params['gd_epochs']} epochs at lr {float(matrix.get('gd_lr', params['gd_lr'])):.3g}"
    )
    if gap <= CONVERGED_WITHIN * matrix["svd_loss"]:
        return f"{stops}: within {CONVERGED_WITHIN:.0%} of it, short of the optimum itself."
    return f"{stops}: it has not converged."


def _dataset_note(dataset: str) -> str:
    if dataset == "iris-uci":
        return "lab2 ran on the report's copy of Iris, the UCI file (`iris-uci`)."
    if dataset == "iris":
        return (
            "lab2 ran on scikit-learn's Iris (`iris`); the report's copy is the UCI file "
            "(`iris-uci`, two samples differ), "
            "which is why the SVD losses differ in the second decimal."
        )
    return (
        f"lab2 ran on `{Path(dataset).stem}`, not the report's Iris: its losses are of other data."
    )


def _data_name(params: Mapping[str, str]) -> str:
    """The run's dataset by name: a built-in one's, or a CSV's file name without .csv."""
    return Path(params["dataset"]).stem


def _q1_3(iris: pd.Series, figures: Mapping[str, str]) -> str:
    figure = (
        f"\n\n![U from SVD and from GD]({figures['u_scatter']})" if "u_scatter" in figures else ""
    )
    if not math.isfinite(iris["gd_loss"]):
        return (
            f"## Q1_3 — the U factor of both{figure}\n\n"
            "GD diverged, so its U is not finite: there are no angles between the two U."
        )
    planes = ", ".join(f"{iris[c]:.2g}°" for c in iris.index if c.startswith("principal_angle"))
    axes = ", ".join(f"{iris[c]:.0f}°" for c in iris.index if c.startswith("u_column_angle"))
    return (
        f"## Q1_3 — the U factor of both{figure}\n\n"
        f"The principal angles between the planes the two U span are {planes}: one plane. "
        "Their columns point "
        f"{axes} apart: GD's U is SVD's U times a 2×2 change of basis, so the same groups "
        "appear turned and stretched."
    )


def _q2_1(params: Mapping[str, str]) -> str:
    # runs before these params were logged: Iris under the lab's split
    shape = {"features": "4", "classes": "3", "train_rows": "100", "val_rows": "50"} | {
        k: params[k] for k in ("features", "classes", "train_rows", "val_rows") if k in params
    }
    return (
        "## Q2_1 — the recipe\n\n"
        f"- Architecture: {shape['features']} features → {params['hidden']} ReLU units → "
        f"{shape['classes']} logits.\n"
        "- Init: weights uniform on [0, 1) from the cell's seed, biases zero (as the lab's code).\n"
        "- Loss: cross-entropy, mean over the training rows; update: full-batch gradient "
        "descent, one step per iteration.\n"
        f"- Data: features scaled by `{params['scaling']}` fitted on "
        f"{params.get('scaling_rows', 'all')} rows; protocol `{params['protocol']}` "
        f"(held-out: {shape['train_rows']} training rows, {shape['val_rows']} validation rows "
        "never trained on)."
    )


def _q2_2(results: RunResults, cells: pd.DataFrame) -> str:
    p = results.params
    summary, pairs = results.tables["seed_summary"], results.tables["seed_pairs"]
    shown = [
        f"![{about}]({results.figures[name]})"
        for name, about in FIGURES.items()
        if name != "u_scatter" and name in results.figures
    ]
    model = f" Its model: `{results.model_uri}`." if results.model_uri else ""
    return (
        f"## Q2_2 — the grid over seeds\n\n{len(cells)} cells: lr {p.get('lrs', '')} × "
        f"iterations {p.get('iterations', '')} × "
        f"seeds {p.get('seeds', '')}.\n\n"
        + markdown_table(display_table(summary))
        + "\n\n"
        + "\n\n".join(shown)
        + "\n\n### Paired verdicts\n\n"
        + pairs_markdown(pairs, limit=6)
        + (
            f"\n\n**Winner:** lr {float(p['best_lr']):g} × {p['best_iterations']} iterations "
            f"(seed {p['best_seed']}).{model}"
        )
    )


def _claims(checked: pd.DataFrame, dataset: str) -> str:
    lines = ["## The original report's claims, checked"]
    not_judged = int((checked["verdict"] == NOT_JUDGED).sum())
    if not_judged:
        lines.append(
            f"This run is on `{dataset}`, not Iris: {not_judged} of the report's {len(checked)} "
            "claims are about Iris and are not judged here; the others are about the lab's 3×3 "
            "matrix."
        )
    for claim in checked.itertuples():
        lines.append(f"> {claim.quote}\n\n{claim.section}: **{claim.verdict}**. {claim.evidence}.")
    return "\n\n".join(lines)


def _missed(cells: pd.DataFrame) -> str:
    same = same_time_cells(cells)
    if same.empty:
        return (
            "## What the runs show that the report missed\n\nNo two groups share lr × iterations "
            "in this grid."
        )
    rows = [
        f"- lr {r.lr_a:g} × {r.it_a} and lr {r.lr_b:g} × {r.it_b} (lr × t = {r.time:g}): the "
        "largest difference seed by "
        f"seed is {r.largest:.4f}" + (", the same end" if r.largest <= SAME_TIME else "")
        for r in same.itertuples()
    ]
    alike = int((same["largest"] <= SAME_TIME).sum())
    return (
        "## What the runs show that the report missed\n\n"
        "Small-step gradient descent follows nearly the same path in the time lr × t: "
        f"{alike} of {len(same)} pairs of groups "
        f"with equal lr × iterations end with every accuracy and loss within {SAME_TIME:g}, "
        "seed by seed.\n\n" + "\n".join(rows)
    )


def same_time_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """Pairs of (lr, iterations) groups with equal lr × iterations, and their largest difference
    over seeds in any accuracy or loss: lr_a, it_a, lr_b, it_b, time, largest."""
    metrics = ["train_accuracy", "val_accuracy", "train_loss", "val_loss"]
    keyed = cells.assign(time=(cells["lr"] * cells["iterations"]).round(9)).set_index(
        ["lr", "iterations", "seed"]
    )
    groups = (
        keyed.reset_index()[["lr", "iterations", "time"]]
        .drop_duplicates()
        .sort_values(["time", "lr"], ascending=[True, False])
    )
    rows = []
    for time, same in groups.groupby("time"):
        same = same.to_records(index=False)
        for k, a in enumerate(same):
            for b in same[k + 1 :]:
                left, right = (
                    keyed.xs((a.lr, a.iterations), level=("lr", "iterations")),
                    keyed.xs((b.lr, b.iterations), level=("lr", "iterations")),
                )
                largest = (left[metrics] - right[metrics]).abs().max().max()
                rows.append(
                    {
                        "lr_a": a.lr,
                        "it_a": int(a.iterations),
                        "lr_b": b.lr,
                        "it_b": int(b.iterations),
                        "time": time,
                        "largest": largest,
                    }
                )
    return pd.DataFrame(rows, columns=["lr_a", "it_a", "lr_b", "it_b", "time", "largest"])


def _published(published: pd.DataFrame, quantity: str) -> float:
    return float(published.loc[published["quantity"] == quantity, "value"].iloc[0])


def _ours(
    lab1: pd.Series, data: pd.Series, cells: pd.DataFrame, params: Mapping[str, str]
) -> pd.DataFrame:
    """The run's values of the report's quantities, in the rows `compare_with_report` reads."""
    rows = [
        {"quantity": "q1_1_gd_loss", "value": lab1["gd_loss"]},
        {"quantity": "q1_2_gd_loss", "value": data["gd_loss"]},
        {"quantity": "q1_2_svd_loss", "value": data["svd_loss"]},
    ]
    for metric in ("train_accuracy", "val_accuracy"):
        rows += [
            {
                "quantity": metric,
                "protocol": params["protocol"],
                "lr": c.lr,
                "iterations": c.iterations,
                "seed": c.seed,
                "value": getattr(c, metric),
            }
            for c in cells.itertuples()
        ]
    return pd.DataFrame(rows)
