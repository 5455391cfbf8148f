"""Bad input, tried systematically: CLI options, data files, tracking URIs and flow parameters.

Each case: exit status 2 (or Prefect's ParameterTypeError for flows), a message naming the offending
value and what is allowed, and no run in MLflow.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect.exceptions import ParameterTypeError

from lab2.cli.main import main
from lab2.cli.processes import free_port
from lab2.core.errors import InputError
from lab2.core.params import Lab2Params
from lab2.flows.pipeline import lab2
from tests.helpers.mlflow_runs import all_runs

GOOD_ROWS = "a,b,label\n1,2,x\n2,1,y\n3,5,x\n4,1,y\n5,2,x\n6,3,y\n"


# (options, message parts): every part must appear in the message.
CLI_CASES = {
    "lr zero": (["--lrs", "0"], ["--lrs 0:", "greater than 0"]),
    "lr negative": (["--lrs", "-0.1"], ["--lrs -0.1:", "greater than 0"]),
    "lr nan": (["--lrs", "nan"], ["--lrs nan:", "finite number"]),
    "lr inf": (["--lrs", "inf"], ["--lrs inf:", "finite number"]),
    "lrs repeated": (["--lrs", "0.1", "0.1"], ["--lrs 0.1 0.1:", "distinct", "[0.1]"]),
    "iterations zero": (["--iterations", "0"], ["--iterations 0:", "greater than or equal to 1"]),
    "iterations repeated": (["--iterations", "5", "5"], ["--iterations 5 5:", "distinct"]),
    "seed negative": (["--seeds", "-1"], ["--seeds -1:", "greater than or equal to 0"]),
    "seeds repeated": (["--seeds", "2", "2"], ["--seeds 2 2:", "distinct"]),
    "hidden zero": (["--hidden", "0"], ["--hidden 0:", "greater than or equal to 1"]),
    "hidden too large": (["--hidden", "5000"], ["--hidden 5000:", "less than or equal to 4096"]),
    "split seed negative": (
        ["--split-seed", "-1"],
        ["--split-seeds -1:", "greater than or equal to 0"],
    ),
    "split seeds repeated": (["--split-seeds", "1", "1"], ["--split-seeds 1 1:", "distinct"]),
    "min effect zero": (["--min-effect", "0"], ["--min-effect 0:", "greater than 0"]),
    "min effect nan": (["--min-effect", "nan"], ["--min-effect nan:", "finite number"]),
    "gd lr zero": (["--gd-lr", "0"], ["--gd-lr 0:", "greater than 0, or 'auto'"]),
    "gd lr a word": (["--gd-lr", "fast"], ["--gd-lr fast:", "valid number", "or 'auto'"]),
    "gd epochs zero": (["--gd-epochs", "0"], ["--gd-epochs 0:", "greater than or equal to 1"]),
    "rank zero": (["--rank", "0"], ["--rank 0:", "greater than or equal to 1"]),
    "rank above the matrix": (["--rank", "5"], ["rank 5", "allowed 1 to 3"]),
    "unknown scaling": (["--scaling", "minmax"], ["--scaling minmax:", "'var' or 'std'"]),
    "empty experiment": (["--experiment", ""], ["--experiment :", "at least 1 character"]),
    "unknown dataset": (
        ["--dataset", "mnist"],
        ["'mnist'", "iris, iris-uci or a path ending in .csv"],
    ),
    "label column on iris": (["--label-column", "species"], ["'species'", "CSV datasets only"]),
    "a grid beyond a day": (
        ["--iterations", "1000000000", "--lrs", "0.1", "--seeds", "0"],
        ["est. 119 h, over LAB2_MAX_HOURS=24", "fewer --iterations"],
    ),
    "epochs beyond memory": (
        ["--gd-epochs", "10000000000"],
        ["est. 400 GB of memory", "GB free", "fewer --gd-epochs"],
    ),
}

# (file text or a special, options besides --dataset, message parts); the file is data.csv.
CSV_CASES = {
    "empty": ("", [], ["data.csv", "the file is empty", "header row"]),
    "header only": ("a,b,label\n", [], ["data.csv", "no data rows", "at least 3 rows"]),
    "ragged": (
        "a,b,label\n1,2,x\n1,2,3,y\n",
        [],
        ["data.csv", "not a readable CSV", "same number of fields"],
    ),
    "non-numeric": (
        "a,b,label\n1,x,p\n2,3,q\n4,5,p\n",
        [],
        ["data.csv", "not numeric: ['b']", "must be numeric"],
    ),
    "nan": (
        "a,b,label\n1,nan,x\n2,1,y\n3,5,x\n",
        [],
        ["data.csv", "data row 1 (line 2), column 'b' holds nan", "finite number", "empty: 1)"],
    ),
    "inf": (
        "a,b,label\n1,2,x\n2,inf,y\n3,5,x\n",
        [],
        ["data.csv", "data row 2 (line 3), column 'b' holds inf", "finite number"],
    ),
    "empty cell": (
        "a,b,label\n1,,x\n2,1,y\n3,5,x\n",
        [],
        ["data.csv", "data row 1 (line 2), column 'b'", "NaN, inf or empty", "finite number"],
    ),
    "single class": (
        "a,b,label\n1,2,p\n2,1,p\n3,5,p\n",
        [],
        ["data.csv", "holds one class", "at least two"],
    ),
    "too few rows": ("a,b,label\n1,2,x\n2,1,y\n", [], ["data.csv", "2 rows", "at least 3 rows"]),
    "a class of one row": (
        "a,b,label\n1,2,x\n2,1,y\n3,5,x\n4,4,x\n",
        [],
        ["data.csv", "class 'y' has 1 row", "rows per class: x: 3, y: 1"],
    ),
    "a class left out of training": (
        "a,b,label\n1,2,x\n2,1,y\n3,5,x\n4,4,y\n5,1,x\n6,0,x\n",
        ["--split-seed", "25"],
        [
            "data.csv",
            "split seed 25 leaves class 'y' (0 of its 2 rows) out of the 4 training rows",
            "x: 4, y: 2",
        ],
    ),
    "a later split seed leaves a class out": (
        "a,b,label\n1,2,x\n2,1,y\n3,5,x\n4,4,y\n5,1,x\n6,0,x\n",
        ["--split-seeds", "0", "25"],
        ["data.csv", "split seed 25 leaves class 'y' (0 of its 2 rows) out of the 4 training rows"],
    ),
    "label only": ("label\nx\ny\nx\n", [], ["data.csv", "at least one feature column"]),
    "unknown label column": (
        GOOD_ROWS,
        ["--label-column", "nope"],
        ["data.csv", "no label column 'nope'", "columns are ['a', 'b', 'label']"],
    ),
    "missing file": (None, [], ["data.csv", "no such file", "existing CSV file"]),
    "a directory": ("<dir>", [], ["data.csv", "is a directory", "header row"]),
}

URI_CASES = {
    "unknown scheme": (
        "htp://127.0.0.1:5000",
        ["htp://127.0.0.1:5000", "unknown scheme 'htp'", "sqlite, http, https"],
    ),
    "no host": ("http://", ["http://", "names no host", "http://HOST:PORT"]),
    "bad port": (
        "http://127.0.0.1:99999",
        ["http://127.0.0.1:99999", "malformed", "http://HOST:PORT"],
    ),
    "nothing listening": (
        "http://127.0.0.1:{port}",
        ["http://127.0.0.1:{port}", "no MLflow server answers", "mlflow server --host 127.0.0.1"],
    ),
    "missing folder": (
        "sqlite:////nonexistent-lab2/store/mlflow.db",
        ["sqlite:////nonexistent-lab2/store/mlflow.db", "does not exist", "existing folder"],
    ),
    "sqlite without file": ("sqlite://", ["sqlite://", "names no database file", "sqlite:///PATH"]),
    "credentials redacted": (
        "http://me:hunter2@127.0.0.1:{port}",
        ["http://***@127.0.0.1:{port}", "no MLflow server answers"],
    ),
}

# Flow parameters: Prefect refuses them (naming the parameter and the rule) before the flow body
# runs.
FLOW_CASES = {
    "lr zero": (dict(lrs=(0.0,)), ["lrs.0", "greater than 0"]),
    "lr inf": (dict(lrs=(float("inf"),)), ["lrs.0", "finite number"]),
    "lrs repeated": (dict(lrs=(0.1, 0.1)), ["lrs", "distinct", "[0.1]"]),
    "lrs wrong type": (dict(lrs="fast"), ["lrs", "valid tuple"]),
    "iterations empty": (dict(iterations=()), ["iterations", "at least one value"]),
    "iterations zero": (dict(iterations=(0,)), ["iterations.0", "greater than or equal to 1"]),
    "iterations fractional": (dict(iterations=(1.5,)), ["iterations.0", "valid integer"]),
    "seeds repeated": (dict(seeds=(1, 1)), ["seeds", "distinct", "[1]"]),
    "split seeds empty": (dict(split_seeds=()), ["split_seeds", "at least one value"]),
    "min effect negative": (dict(min_effect=-0.1), ["min_effect", "greater than 0"]),
    "rank zero": (dict(rank=0), ["rank", "greater than or equal to 1"]),
    "gd epochs zero": (dict(gd_epochs=0), ["gd_epochs", "greater than or equal to 1"]),
    "hidden wrong type": (dict(hidden="twelve"), ["hidden", "valid integer"]),
    "unknown dataset": (dict(dataset="mnist"), ["dataset", "unknown dataset 'mnist'"]),
    "unknown scaling": (dict(scaling="minmax"), ["scaling", "'var' or 'std'"]),
    "unknown protocol": (dict(protocol="k-fold"), ["protocol", "'held-out'"]),
    "force wrong type": (dict(force="maybe"), ["force", "valid boolean"]),
}


@pytest.fixture
def fresh_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    # Bad input is refused before any Prefect API is needed: point at one that is not there, start
    # none.
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    return tmp_path


def _refused(options: list[str], capsys) -> str:
    try:
        code = main(["run", *options])
    except SystemExit as exit_info:  # argparse: an unknown option
        code = exit_info.code
    assert code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("options, parts", CLI_CASES.values(), ids=CLI_CASES.keys())
def test_bad_cli_option(fresh_dir, capsys, options, parts):
    err = _refused(options, capsys)
    assert all(p in err for p in parts), err
    assert not (fresh_dir / "mlflow.db").exists()


@pytest.mark.parametrize(
    "options, message",
    [
        (["--lrs", "fast"], "--lrs fast: Input should be a valid number"),
        (["--iterations", "1.5"], "--iterations 1.5: Input should be a valid integer"),
        (["--seeds"], "--seeds : must hold at least one value"),
    ],
    ids=["lr not a number", "iterations not an integer", "seeds empty"],
)
def test_unparseable_cli_option(fresh_dir, capsys, options, message):
    assert message in _refused(options, capsys)
    assert not (fresh_dir / "mlflow.db").exists()


@pytest.mark.parametrize("text, options, parts", CSV_CASES.values(), ids=CSV_CASES.keys())
def test_bad_csv(fresh_dir, capsys, text, options, parts):
    path = fresh_dir / "data.csv"
    if text == "<dir>":
        path.mkdir()
    elif text is not None:
        path.write_text(text)
    err = _refused(["--dataset", "data.csv", *options], capsys)
    assert all(p in err for p in parts), err
    assert err.count("\n") == 1 and err.startswith("lab2 run: bad input: "), err  # one line
    assert not (fresh_dir / "mlflow.db").exists()


@pytest.mark.parametrize("uri, parts", URI_CASES.values(), ids=URI_CASES.keys())
def test_bad_tracking_uri(fresh_dir, monkeypatch, capsys, uri, parts):
    port = free_port()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri.format(port=port))
    err = _refused(["--lrs", "0.1"], capsys)
    assert all(p.format(port=port) in err for p in parts), err
    assert "hunter2" not in err
    assert list(fresh_dir.iterdir()) == []


@pytest.mark.usefixtures("prefect_api")
@pytest.mark.parametrize("params, parts", FLOW_CASES.values(), ids=FLOW_CASES.keys())
def test_bad_flow_parameter(mlflow_store, params, parts):
    with pytest.raises(ParameterTypeError) as error:
        lab2(params=params)
    assert all(p in str(error.value) for p in parts), str(error.value)
    assert all_runs(mlflow_store) == []


@pytest.mark.usefixtures("prefect_api")
def test_flows_refuse_bad_data_and_a_bad_tracking_uri_before_any_run(
    mlflow_store, tmp_path, monkeypatch
):
    (tmp_path / "one.csv").write_text("a,b,label\n1,2,p\n2,1,p\n3,5,p\n")
    with pytest.raises(InputError, match="one.csv: label column 'label' holds one class"):
        lab2(Lab2Params(dataset="one.csv", lrs=(0.1,), iterations=(2,), seeds=(0,), gd_epochs=2))
    assert all_runs(mlflow_store) == []
    with pytest.raises(InputError, match="est. 119 h"):
        lab2(Lab2Params(lrs=(0.1,), iterations=(10**9,), seeds=(0,), gd_epochs=2))
    assert all_runs(mlflow_store) == []
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "htp://nowhere")
    with pytest.raises(InputError, match="unknown scheme 'htp'"):
        lab2(Lab2Params(lrs=(0.1,), iterations=(2,), seeds=(0,), gd_epochs=2))
    assert all_runs(mlflow_store) == []


@pytest.mark.parametrize(
    "url", ["ftp://hooks.example.org/x", "http://", "hooks.example.org/lab2", ""]
)
def test_an_alert_webhook_that_is_not_an_http_url_is_refused_before_the_stack_is_asked(
    fresh_dir, capsys, url
):
    assert (
        main(["stack", "deploy", "--data-dir", str(fresh_dir / "no-stack"), "--alert-webhook", url])
        == 2
    )
    err = capsys.readouterr().err
    assert (
        f"--alert-webhook {url}: allowed is an http:// or https:// URL with a host" in err
        and "Traceback" not in err
    )


def test_history_of_no_runs_or_of_fewer_than_one_is_refused(fresh_dir, capsys):
    assert main(["history", "--last", "0"]) == 2
    assert "--last 0: allowed is a whole number ≥ 1" in capsys.readouterr().err
    assert not (fresh_dir / "mlflow.db").exists()
    assert main(["history"]) == 2
    err = capsys.readouterr().err
    assert "no finished lab2 run in experiment 'lab2'" in err and "Traceback" not in err
