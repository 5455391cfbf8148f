"""The `lab2` console script: a real small run in a fresh directory, and bad input refused with exit
2."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import requests
from mlflow.tracking import MlflowClient

from lab2.cli.main import main
from tests.helpers.mlflow_runs import all_runs
from tests.helpers.processes import descendants, left_behind
from tests.helpers.stack_servers import prefect_json

LAB2 = str(Path(sys.executable).with_name("lab2"))


def _lab2(
    tmp_path, *args: str, command: str = LAB2, api: str | None = None, **extra_env: str
) -> subprocess.CompletedProcess:
    """Run the console script (or `command`) in a fresh process in `tmp_path`, on the embedded
    defaults (or on the Prefect server at `api`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_API"))}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    env |= extra_env
    if api is not None:
        env["PREFECT_API_URL"] = api
    done = subprocess.run(
        [command, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.system
def test_a_rerun_with_nothing_to_do_copies_the_results_without_torch_and_links_the_units(
    tmp_path, prefect_api
):
    small = [
        "run",
        "--lrs",
        "0.1",
        "0.01",
        "--iterations",
        "5",
        "10",
        "--seeds",
        "0",
        "1",
        "--gd-epochs",
        "20",
    ]
    first = _lab2(tmp_path, *small).stdout
    no_torch = tmp_path / "no-torch" / "torch"
    no_torch.mkdir(parents=True)
    (no_torch / "__init__.py").write_text(
        "raise ImportError('a rerun with nothing to do needs no torch')\n"
    )
    again = _lab2(
        tmp_path, *small, "--task-runner", "threads", PYTHONPATH=str(no_torch.parent)
    ).stdout
    # the results, as the first run printed them
    assert again.split("\nruns: ")[0] == first.split("\nruns: ")[0]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    earlier, rerun = sorted(
        (r for r in all_runs(client) if r.data.tags.get("lab2.role") == "pipeline"),
        key=lambda r: r.info.start_time,
    )
    assert (
        "runs: 0 computed, 12 reused: every unit and result of run " + earlier.info.run_id
        in " ".join(again.split())
    )
    assert f"MLflow parent run {rerun.info.run_id}." in again and rerun.info.status == "FINISHED"
    assert (
        rerun.data.tags["lab2.rerun_of"] == earlier.info.run_id
        and {**rerun.data.params, "task_runner": "auto"} == earlier.data.params
    )
    assert (
        rerun.data.tags["lab2.mlp_grid.units_reused"] == "8"
        and rerun.data.tags["lab2.mlp_grid.units_computed"] == "0"
    )
    assert "lab2.env.torch_threads" not in rerun.data.tags  # nothing was computed with torch
    files = {run.info.run_id: sorted(_files(client, run.info.run_id)) for run in (earlier, rerun)}
    assert (
        files[rerun.info.run_id] == files[earlier.info.run_id]
        and "figures/grid_summary.png" in files[earlier.info.run_id]
    )
    units = [
        pd.read_csv(
            client.download_artifacts(
                r.info.run_id, "units/mlp_grid.csv", str(tmp_path / r.info.run_id)
            )
        )
        for r in (earlier, rerun)
    ]
    assert (
        units[1]["run_id"].tolist() == units[0]["run_id"].tolist()
        and units[1]["reused"].all()
        and not units[0]["reused"].any()
    )
    assert (
        [m.model_id for m in rerun.outputs.model_outputs]
        == [m.model_id for m in earlier.outputs.model_outputs]
        != []
    )
    note = rerun.data.tags["mlflow.note.content"]
    # what changed since the last run, then the results it copied
    since, results = note.split("\n\n---\n\n", 1)
    assert (
        since.startswith("### Since the last run: **unchanged**")
        and "Every unit is the last run's" in since
    )
    assert (
        results.startswith("- **Best group: lr=0.1 iterations=10**")
        and "Nothing was computed" in note
        and units[0]["run_id"][0] in note
    )

    # a unit gone: the pipeline runs again, and computes that unit alone
    client.delete_run(units[0]["run_id"][0])
    third = _lab2(tmp_path, *small).stdout
    assert "runs: 1 computed, 11 reused from earlier FINISHED runs" in third

    fourth = _lab2(
        tmp_path, *small, api=prefect_api
    ).stdout  # under a Prefect server: a flow run of `lab2`
    assert "runs: 0 computed, 12 reused: every unit and result of run" in " ".join(fourth.split())
    newest = max(
        (r for r in all_runs(client) if r.data.tags.get("lab2.role") == "pipeline"),
        key=lambda r: r.info.start_time,
    )
    flow_run = prefect_json(prefect_api, f"flow_runs/{newest.data.tags['prefect.flow_run_id']}")
    assert flow_run["state_type"] == "COMPLETED" and newest.data.tags["prefect.flow_name"] == "lab2"
    # the runs list shows a night with nothing new at a glance
    assert flow_run["state_name"] == "Unchanged"


def _files(client: MlflowClient, run_id: str, folder: str | None = None) -> list[str]:
    found = []
    for entry in client.list_artifacts(run_id, folder):
        found += _files(client, run_id, entry.path) if entry.is_dir else [entry.path]
    return found


@pytest.mark.system
def test_lab2_run_then_compare_from_fresh_processes(tmp_path, prefect_api):
    done = _lab2(
        tmp_path,
        "run",
        "--lrs",
        "0.1",
        "0.01",
        "--iterations",
        "5",
        "10",
        "--seeds",
        "0",
        "1",
        "--gd-epochs",
        "20",
    )
    store = tmp_path / "mlflow.db"
    # PATH has no lab2 here: the command as it can be pasted
    assert done.stdout.rstrip().endswith(f"\n  {LAB2} ui")
    assert "Q2 MLP grid" in done.stdout and "val_accuracy" in done.stdout
    # progress, a plain line when the output is not a terminal
    assert "cells trained 8/8, logged 8/8" in done.stderr
    assert "Paired comparisons of val_accuracy" in done.stdout and "Verdicts:" in done.stdout
    for heading in (
        "Q1 factorisation",
        "Q2 MLP grid",
        "MLP cells over seeds",
        "Paired comparisons",
        "Best group:",
    ):
        assert done.stdout.count(heading) == 1, heading  # each table once
    # Prefect's run log lines stay in the Prefect UI
    assert "Finished in state" not in done.stdout + done.stderr
    assert [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if len(line) > 100 and " " in line.strip()
    ] == []
    client = MlflowClient(f"sqlite:///{store}")
    runs = all_runs(client)
    assert sorted(r.data.tags.get("lab2.step", "parent") for r in runs) == sorted(
        ["parent"] + ["gd-factorise"] * 2 + ["svd-baseline"] * 2 + ["mlp"] * 8
    )
    (parent,) = [r for r in runs if r.data.tags.get("lab2.role") == "pipeline"]
    first = parent.info.run_id
    # runs the API did not keep
    assert not {"prefect.flow_run_url", "prefect.flow_run_id", "prefect.flow_run_name"} & set(
        parent.data.tags
    )
    assert "Prefect flow run: none kept" in parent.data.tags["mlflow.note.content"]
    pairs = client.download_artifacts(first, "seed_pairs.csv", str(tmp_path))
    with open(pairs) as table:
        header = table.readline()
    assert header.startswith(
        "a,b,verdict,call,caveats,kind,metric,higher_is_better,n,n_split_seeds,mean_diff,sd_diff,"
    )

    compared = _lab2(tmp_path, "compare").stdout
    reading = (
        "import sys\nfrom lab2.cli.main import main\nmain(['compare'])\nprint('torch imported:', "
        "'torch' in sys.modules)"
    )
    # seconds saved
    assert _lab2(tmp_path, "-c", reading, command=sys.executable).stdout.endswith(
        "torch imported: False\n"
    )
    assert f"Run {first}" in compared and "Best group: lr=0.1 iterations=10" in compared
    assert re.search(r"^ *0.1 +10 +2 ", compared, re.MULTILINE)  # lr, iterations, n seeds
    # numbered verdicts, a line each
    block = compared.split("Verdicts:\n")[1].split("\n\n")[0]
    verdicts = re.findall(r"^ ?\d+\. (.+)$", block, flags=re.MULTILINE)
    floor = "with 2 seeds no distribution-free test can go below p = 0.5"
    assert len(verdicts) == len(block.splitlines()) == 5
    assert all(len(v.split()) <= 25 for v in verdicts) and floor not in compared
    assert compared.count(floor.capitalize()) == 1  # the caveat once, under the table

    named = _lab2(
        tmp_path,
        "compare",
        "--pair",
        "lr=0.1 it=10",
        "lr=0.01 iterations=10",
        "--min-effect",
        "0.05",
    ).stdout
    lines = named.splitlines()
    # the run and its store, the two groups under their header, the verdict, its caveats
    assert len(lines) <= 8
    assert lines[0] == f"Run {first} of the MLflow store; --explain gives the reasoning"
    assert re.search(r"^ *0.1 +10 +2 ", named, re.MULTILINE)
    (said,) = [line for line in lines if line.startswith("lr=0.1 vs lr=0.01 at it=10: ")]
    assert "Verdicts:" not in named
    explained = _lab2(
        tmp_path, "compare", "--pair", "lr=0.1 it=10", "lr=0.01 iterations=10", "--explain"
    ).stdout
    assert said in explained and "Why: " in explained and "paired t p = " in explained
    refused = subprocess.run(
        [LAB2, "compare", "--pair", "lr=0.1", "lr=0.01 iterations=10"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store}"},
        timeout=120,
    )
    assert refused.returncode == 2 and "group 'lr=0.1' matches 2 groups" in refused.stderr

    _lab2(
        tmp_path,
        "run",
        "--lrs",
        "0.1",
        "0.01",
        "--iterations",
        "5",
        "10",
        "--seeds",
        "0",
        "1",
        "--gd-epochs",
        "20",
        "--protocol",
        "seed-report",
        api=prefect_api,
    )
    second = _lab2(tmp_path, "compare").stdout.split("Run ")[1].split(" ")[0]
    assert second != first
    side_by_side = _lab2(tmp_path, "compare", first, second).stdout
    assert "setup differs: protocol A=held-out B=seed-report" in side_by_side
    assert (
        "Each cell of A against the same cell of B, seed by seed (val_accuracy, A − B)"
        in side_by_side
    )
    assert (
        len(re.findall(r"^ *\d+ +A lr=\S+ it=\d+ +B lr=\S+ it=\d+ +2 ", side_by_side, re.MULTILINE))
        == 4
    )
    # Every line fits 100 columns but a path or link alone on its line, which must stay whole to be
    # pasted.
    assert [
        line
        for line in (compared + named + side_by_side).splitlines()
        if len(line) > 100 and " " in line.strip()
    ] == []


@pytest.mark.system
def test_lab2_report_writes_the_report_a_separate_run_holds_and_names_what_a_small_run_lacks(
    tmp_path,
):
    lab = tmp_path / "lab"
    lab.mkdir()
    ran = _lab2(lab, "run", "--gd-epochs", "200").stdout  # the lab's grid, in a process of its own
    store = MlflowClient(f"sqlite:///{lab / 'mlflow.db'}")
    (parent,) = [r for r in all_runs(store) if r.data.tags.get("lab2.role") == "pipeline"]
    carried = Path(store.download_artifacts(parent.info.run_id, "report.md", str(tmp_path)))
    *_, heading, location = ran.rstrip().splitlines()  # lab2 run ends with where its report opens
    assert heading == "The lab's report, every claim of the original checked:"
    assert (
        location.strip()
        == (lab / "mlruns").resolve().as_uri() + f"/1/{parent.info.run_id}/artifacts/report.html"
    )
    out = tmp_path / "out"
    out.mkdir()
    said = _lab2(lab, "report", "--run", parent.info.run_id, "--out", str(out)).stdout
    assert str(out / "report.md") in said and str(out / "report.html") in said
    report = (out / "report.md").read_text()
    # the report the run carries, written again from what it holds
    assert report == carried.read_text()
    factorisation = pd.read_csv(
        store.download_artifacts(parent.info.run_id, "factorisation.csv", str(tmp_path))
    ).set_index("matrix")
    assert (
        f"| GD loss, ‖A − UVᵀ‖² | 0.1224 | {factorisation.loc['lab1-3x3', 'gd_loss']:.4f} |"
        in report
    )
    assert f"| GD loss | 15.2292 | {factorisation.loc['iris', 'gd_loss']:.4f} |" in report
    assert (
        f"| SVD loss (the rank-2 optimum) | 15.2288 | {factorisation.loc['iris', 'svd_loss']:.4f} |"
        in report
    )
    summary = pd.read_csv(
        store.download_artifacts(parent.info.run_id, "seed_summary.csv", str(tmp_path))
    )
    for row in summary.itertuples():  # the seed table's cells, as the run logged them
        assert re.search(
            (
                rf"^\| {row.lr:g} \| {row.iterations} \| 3 \| {row.val_accuracy_mean:.3f} ± "
                rf"{row.val_accuracy_std:.3f} \|"
            ),
            report,
            re.MULTILINE,
        )
    rebuilt = pd.read_csv(
        store.download_artifacts(parent.info.run_id, "reconstruction.csv", str(tmp_path))
    ).sort_values(["row", "column"])
    for _, entries in rebuilt.groupby("row"):  # Q1_1's matrices, row by row, as the run logged them
        shown = " | ".join(", ".join(f"{v:.4f}" for v in entries[c]) for c in ("gd", "svd"))
        assert f" | {shown} |" in report
    params = parent.data.params
    assert (
        f"**Winner:** lr {float(params['best_lr']):g} × {params['best_iterations']} "
        f"iterations (seed {params['best_seed']})"
    ) in report
    assert (out / "figures" / "u_scatter.png").read_bytes()[:4] == b"\x89PNG"
    assert "data:image/png;base64," in (out / "report.html").read_text()
    latest = _lab2(
        lab, "report", "--out", str(tmp_path)
    ).stdout  # the latest run by default: the same report
    assert parent.info.run_id in latest and (tmp_path / "report.md").read_text() == report

    _lab2(lab, "run", "--lrs", "0.1", "--iterations", "5", "--seeds", "0", "1", "--gd-epochs", "20")
    refused = subprocess.run([LAB2, "report"], cwd=lab, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "lacks what the report needs: the cell lr 0.1 × 1000 iterations," in refused.stderr
    # the small grid holds none of the lab's six cells
    assert refused.stderr.count("the cell lr") == 6
    unknown = subprocess.run(
        [LAB2, "report", "--run", "no-such-run"],
        cwd=lab,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert (
        unknown.returncode == 2
        and "no run 'no-such-run'" in unknown.stderr
        and "Traceback" not in unknown.stderr
    )


@pytest.mark.system
def test_lab2_report_prints_a_verdict_per_row(tmp_path):
    out = _lab2(tmp_path, "report", "--reproduce", "--seeds", "0", "1").stdout
    rows = [
        line
        for line in out.splitlines()
        if line.rstrip().endswith("reproduced") or "differs:" in line
    ]
    assert len(rows) == 3 + 6 * 2 * 2
    assert any(
        line.startswith(" q1_2_svd_loss") and line.rstrip().endswith("reproduced") for line in rows
    )


@pytest.mark.parametrize(
    "options, message",
    [
        (["--lrs", "0"], "--lrs 0: Input should be greater than 0"),
        (["--lrs", "-0.1"], "--lrs -0.1: Input should be greater than 0"),
        (["--lrs", "nan"], "--lrs nan: Input should be a finite number"),
        (["--lrs", "0.1", "0.1"], "--lrs 0.1 0.1: values must be distinct"),
        (["--iterations", "0"], "--iterations 0: Input should be greater than or equal to 1"),
        (["--seeds", "2", "2"], "--seeds 2 2: values must be distinct"),
        (["--gd-epochs", "0"], "--gd-epochs 0: Input should be greater than or equal to 1"),
        (["--rank", "0"], "--rank 0: Input should be greater than or equal to 1"),
        (["--rank", "5"], "rank 5 does not fit lab1-3x3 (3×3): allowed 1 to 3"),
        (["--dataset", "mnist"], "unknown dataset 'mnist'"),
        (["--dataset", "missing.csv"], "missing.csv: no such file"),
        (["--scaling", "minmax"], "--scaling minmax: Input should be 'var' or 'std'"),
        (["--experiment", ""], "--experiment : String should have at least 1 character"),
        (["--protocol", "leaky"], "--protocol leaky: Input should be 'held-out' or 'seed-report'"),
    ],
)
def test_bad_input_exits_2_naming_the_problem_before_any_run(
    tmp_path, monkeypatch, capsys, options, message
):
    # refused before any Prefect API is needed
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["run", *options]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "the file is empty"),
        ("a,b,y\n1,x,p\n2,3,q\n", "must be numeric"),
        ("a,y\n1,p\n2,p\n", "one class"),
    ],
)
def test_bad_csv_exits_2(tmp_path, monkeypatch, capsys, text, message):
    # refused before any Prefect API is needed
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.csv").write_text(text)
    assert main(["run", "--dataset", "data.csv"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.usefixtures("mlflow_store")  # an empty store, copied rather than migrated again
def test_compare_of_an_unknown_run_exits_2(capsys):
    assert main(["compare"]) == 2
    assert "no finished lab2 grid run in experiment 'lab2'" in capsys.readouterr().err
    assert main(["compare", "0123abc"]) == 2
    assert "no run '0123abc'" in capsys.readouterr().err


def test_lab2_ui_without_a_store_or_its_experiment_exits_2_before_starting_anything(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["ui"]) == 2
    assert (
        f"no MLflow store at sqlite:///{tmp_path / 'mlflow.db'} yet; `lab2 run` makes one"
        in capsys.readouterr().err
    )
    assert (
        main(["ui", "--port", "0"]) == 2
        and "--port 0: give a port from 1 to 65535" in capsys.readouterr().err
    )


@pytest.mark.usefixtures("mlflow_store")
def test_lab2_ui_names_a_missing_experiment(capsys):
    assert main(["ui", "--experiment", "sweep-2"]) == 2
    assert "no experiment 'sweep-2' in sqlite:///" in capsys.readouterr().err


@pytest.mark.system
def test_lab2_ui_serves_the_last_runs_store_until_ctrl_c_ends_its_process_group(
    mlflow_store, tmp_path
):
    from lab2.cli.ui import record_last_run

    mlflow_store.create_experiment("lab2")
    record_last_run(f"sqlite:///{tmp_path / 'mlflow.db'}", "lab2")
    before = descendants()
    env = {
        k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"
    }  # the store comes from the record
    ui = subprocess.Popen(
        [LAB2, "ui"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    said = ""
    for line in ui.stdout:  # until the link is out (or lab2 ui ended)
        said += line
        if line.startswith("Ctrl-C stops it."):
            break
    (link,) = re.findall(
        r"http://127\.0\.0\.1:\d+/#/experiments/\d+/runs\?workflowType=machine_learning", said
    )
    assert requests.get(link.split("/#/")[0] + "/health", timeout=10).status_code == 200
    started = time.monotonic()
    ui.send_signal(signal.SIGINT)
    assert ui.wait(30) == 0 and time.monotonic() - started < 15
    assert left_behind(before, timeout=5) == {}  # mlflow ui's whole process group ended with it


def test_unparseable_numbers_exit_2(capsys):
    assert main(["run", "--lrs", "fast"]) == 2
    assert "--lrs fast: Input should be a valid number" in capsys.readouterr().err


@pytest.mark.system
@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["run", "--lrs", "fast"], 2, "--lrs fast: Input should be a valid number"),
        (["run", "--lrs", "-1"], 2, "--lrs -1"),
        (["--help"], 0, ""),
    ],
)
def test_the_console_script_ends_with_the_commands_status(tmp_path, args, status, message):
    done = subprocess.run([LAB2, *args], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == status and message in done.stderr
    assert not list(tmp_path.iterdir())  # refused before any store was created


@pytest.mark.system
def test_a_split_seed_that_leaves_a_class_out_ends_with_2_and_one_line_before_any_run(tmp_path):
    (tmp_path / "data.csv").write_text("a,b,label\n1,2,x\n2,1,y\n3,5,x\n4,4,y\n5,1,x\n6,0,x\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_API"))}
    done = subprocess.run(
        [LAB2, "run", "--dataset", "data.csv", "--split-seeds", "0", "25"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        "lab2 run: bad input: data.csv: split seed 25 leaves class 'y' (0 of its 2 rows) out "
        "of the "
        "4 training rows, so the model never sees it; choose another split seed or add rows "
        "of that "
        "class (rows per class: x: 4, y: 2)"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv"]  # no store, so no run


@pytest.mark.system
def test_an_uncaught_error_ends_the_console_script_with_1_and_its_traceback(tmp_path):
    code = (
        "import lab2.cli.main as cli\ndef broken(argv=None): raise ValueError('broken')\ncli.main "
        "= broken\ncli.entry()"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1 and "ValueError: broken" in done.stderr


def test_flows_under_the_temporary_api_send_no_heartbeats_to_a_server_that_ends_with_them():
    from prefect.settings import get_current_settings

    from lab2.cli.prefect_api import TemporaryAPI

    before = get_current_settings().flows.heartbeat_frequency
    with TemporaryAPI("http://127.0.0.1:9/api", process=None).flow_settings():
        assert get_current_settings().flows.heartbeat_frequency is None
    assert get_current_settings().flows.heartbeat_frequency == before is not None


@pytest.mark.parametrize(
    "kept, said",
    [(1, "1 finished run kept"), (0, "0 finished runs kept"), (337, "337 finished runs kept")],
)
def test_the_stop_line_counts_the_runs_it_kept_in_words_that_agree(monkeypatch, kept, said):
    from lab2.cli import stopping

    monkeypatch.setattr(stopping, "_finished_children", lambda experiment: kept)
    assert (
        f"lab2 run: stopped (SIGINT): {said}, parent KILLED; rerun the same command to go on."
        == stopping.stopped_message("lab2")
    )
