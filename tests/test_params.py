"""One parameter table: the flows' signatures, `lab2 run`'s options and the setups all follow it."""

import inspect
from typing import get_type_hints

import pytest

from lab2.cli.main import _parser
from lab2.flows.factorisation import factorisation
from lab2.flows.pipeline import lab2
from lab2.flows.mlp_grid import mlp_grid
from lab2.core.params import PIPELINE_PARAMETERS, FactorisationSetup, MLPSetup, invalid_parameters

# The factorisation flow names its hyperparameters without the pipeline's `gd_` prefix.
FLOW_NAMES = {factorisation: {"lr": "gd_lr", "epochs": "gd_epochs", "seed": "gd_seed"}}


@pytest.mark.parametrize("flow", [lab2, mlp_grid, factorisation], ids=lambda f: f.name)
def test_flow_signatures_follow_the_parameter_table(flow):
    hints = get_type_hints(flow.fn, include_extras=True)
    shared = 0
    for name, declared in inspect.signature(flow.fn).parameters.items():
        parameter = PIPELINE_PARAMETERS.get(FLOW_NAMES.get(flow, {}).get(name, name))
        if parameter is None:
            continue
        shared += 1
        assert hints[name] == parameter.type, name
        assert declared.default == parameter.default, name
    assert shared >= 8


def test_the_lab2_flow_takes_every_pipeline_parameter():
    assert set(inspect.signature(lab2.fn).parameters) == set(PIPELINE_PARAMETERS)


def test_cli_options_default_to_the_table():
    args = _parser().parse_args(["run"])
    assert {name: getattr(args, name) for name in PIPELINE_PARAMETERS} == {n: p.default for n, p in PIPELINE_PARAMETERS.items()}


def test_setups_default_to_the_table():
    table = {n: PIPELINE_PARAMETERS[n].default for n in ("dataset", "hidden", "scaling", "protocol")}
    assert MLPSetup().as_params() == {**table, "split_seed": PIPELINE_PARAMETERS["split_seeds"].default[0]}
    assert FactorisationSetup().as_params() == {k: PIPELINE_PARAMETERS[g].default for k, g in
                                                [("rank", "rank"), ("lr", "gd_lr"), ("epochs", "gd_epochs"), ("seed", "gd_seed")]}


def test_defaults_are_valid_and_bad_values_say_what_is_allowed():
    assert invalid_parameters({n: p.default for n, p in PIPELINE_PARAMETERS.items()}) == []
    assert invalid_parameters({"lrs": (0.1, -1.0), "task_runner": "ray"}) == [
        ("lrs", "Input should be greater than 0"),
        ("task_runner", "Input should be 'auto', 'threads', 'processes' or 'dask'"),
    ]
