"""Parameters declared once: each flow takes its model, and `lab2 run`'s options and Prefect's form
follow from it."""

import inspect

import pytest
import yaml
from prefect.utilities.callables import parameter_schema

from lab2.cli.main import _parser, _problems, _validated
from lab2.core.errors import InputError
from lab2.core.params import FactorisationParams, GridParams, Lab2Params
from lab2.flows.factorisation import factorisation
from lab2.flows.mlp_grid import mlp_grid
from lab2.flows.pipeline import lab2
from tests.helpers.checkout import ROOT

FLOWS = {lab2: Lab2Params, mlp_grid: GridParams, factorisation: FactorisationParams}


@pytest.mark.parametrize("flow", FLOWS, ids=lambda f: f.name)
def test_each_deployable_flow_takes_its_model_with_the_labs_defaults(flow):
    (declared,) = inspect.signature(flow.fn).parameters.values()
    assert (
        declared.annotation in (FLOWS[flow].__name__, FLOWS[flow])
        and declared.default == FLOWS[flow]()
    )


@pytest.mark.parametrize("flow", FLOWS, ids=lambda f: f.name)
def test_prefects_form_shows_every_field_with_its_type_default_and_description(flow):
    schema = parameter_schema(flow.fn).model_dump_for_openapi()
    fields = schema["definitions"][FLOWS[flow].__name__]["properties"]
    assert set(fields) == set(FLOWS[flow].model_fields)
    assert all(field.get("description") and "default" in field for field in fields.values())
    assert (
        fields["lrs"]["default"] == [0.1, 0.01, 0.001]
        if "lrs" in fields
        else fields["rank"]["default"] == 2
    )


def test_the_deployments_set_no_parameter_of_their_own():
    deployments = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    assert {d["name"] for d in deployments} == {"lab2", "factorisation", "mlp-grid"}
    assert all(
        not d.get("parameters") and not any(s.get("parameters") for s in d.get("schedules", []))
        for d in deployments
    )


def test_the_cli_has_an_option_per_field_and_parses_into_the_model():
    assert _validated(Lab2Params, _parser().parse_args(["run"])) == (Lab2Params(), [])
    options = [
        "--lrs",
        "0.3",
        "0.1",
        "--split-seed",
        "2",
        "--no-cell-figures",
        "--force",
        "--gd-lr",
        "0.5",
        "--task-runner",
        "dask",
    ]
    params, problems = _validated(Lab2Params, _parser().parse_args(["run", *options]))
    assert problems == [] and params == Lab2Params(
        lrs=(0.3, 0.1),
        split_seeds=(2,),
        cell_figures=False,
        force=True,
        gd_lr=0.5,
        task_runner="dask",
    )


def test_a_bad_value_is_named_with_what_is_allowed():
    problems = _problems(Lab2Params, {"lrs": (0.1, -1.0), "task_runner": "ray", "seeds": (1, 1)})
    assert problems == [
        "--lrs 0.1 -1: Input should be greater than 0",
        "--seeds 1 1: values must be distinct; repeated: [1]",
        "--task-runner ray: Input should be 'auto', 'threads', 'processes' or 'dask'",
    ]


def test_the_pipeline_hands_each_question_its_own_parameters():
    params = Lab2Params(dataset="iris-uci", rank=1, lrs=(0.5,), experiment="x")
    assert params.factorisation == FactorisationParams(dataset="iris-uci", rank=1, experiment="x")
    assert params.grid == GridParams(dataset="iris-uci", lrs=(0.5,), experiment="x")
    assert params.grid.mlp_setup(3).as_params() == {
        "dataset": "iris-uci",
        "split_seed": 3,
        "hidden": 12,
        "scaling": "var",
        "protocol": "held-out",
        "scaling_rows": "all",
    }


def test_the_size_check_refuses_what_does_not_fit_and_passes_the_lab():
    from lab2.core.workload import (
        BYTES_PER_CURVE_POINT,
        BYTES_PER_TRAJECTORY_POINT,
        CURVE_POINTS,
        run_cost,
    )

    day = 24 * 3600
    with pytest.raises(
        InputError, match="est. 0.199 MB of memory, 0 MB free: use fewer --iterations"
    ):
        # nothing free: even the lab is refused
        Lab2Params().check_size(available_bytes=0, cores=2, max_seconds=day)
    with pytest.raises(InputError, match="over LAB2_MAX_HOURS=0.0005: use fewer --iterations"):
        # the lab: about 3 s
        Lab2Params().check_size(available_bytes=10**9, cores=2, max_seconds=1.8)
    with pytest.raises(InputError, match="fewer --gd-epochs"):
        Lab2Params(gd_epochs=10**9, iterations=(2,)).check_size(
            available_bytes=10**9, cores=2, max_seconds=10 * day
        )
    lab = Lab2Params().check_size(available_bytes=10**9, cores=2, max_seconds=day)
    # 9 trajectories × (100 + 101) curve points, while training and until logged; 1000 epochs of GD
    # loss
    assert (
        lab.bytes
        == 9 * (100 + CURVE_POINTS + 1) * (BYTES_PER_TRAJECTORY_POINT + BYTES_PER_CURVE_POINT)
        + 1000 * BYTES_PER_CURVE_POINT
    )
    # A curve keeps its points, not its steps: a billion steps cost the memory of CURVE_POINTS + 1.
    assert run_cost(1, (10**9,), 1, 0, 2).bytes == run_cost(1, (CURVE_POINTS + 1,), 1, 0, 2).bytes
    # Twice the cores, at most the same time; twice the split seeds, twice the memory.
    assert run_cost(9, (100, 1000), 1, 0, 4).seconds <= run_cost(9, (100, 1000), 1, 0, 2).seconds
    assert run_cost(9, (100, 1000), 2, 0, 2).bytes == 2 * run_cost(9, (100, 1000), 1, 0, 2).bytes


def test_the_cost_grows_with_the_data_read_from_the_csv_without_parsing_it(tmp_path):
    from lab2.core.workload import IRIS_SHAPE, data_shape, run_cost

    path = tmp_path / "big.csv"
    path.write_text("a,b,c,label\n" + "1,2,3,x\n" * 999 + "\n")
    assert data_shape(str(path)) == (999, 3)
    assert data_shape("iris") == data_shape(str(tmp_path / "missing.csv")) == IRIS_SHAPE
    small = run_cost(9, (100, 1000), 1, 1000, 2)
    large = run_cost(9, (100, 1000), 1, 1000, 2, shape=(100_000, 50))
    assert large.seconds > 30 * small.seconds and large.bytes == small.bytes
