import math

import numpy as np
import pytest
import torch

from lab2.core.data import (
    LAB_MATRIX,
    DataError,
    Split,
    centre,
    check_split_classes,
    constant_columns,
    factorisation_matrices,
    load_csv_dataset,
    load_dataset,
    scale,
    split_rows,
)
from lab2.core.errors import InputError


def test_iris_copies_differ_in_exactly_the_35th_and_38th_samples():
    fisher, uci = load_dataset("iris"), load_dataset("iris-uci")
    differing = (fisher.features != uci.features).any(dim=1).nonzero().flatten().tolist()
    assert differing == [34, 37]
    assert uci.features[34].tolist() == [4.9, 3.1, 1.5, 0.1]
    assert uci.features[37].tolist() == [4.9, 3.1, 1.5, 0.1]
    assert fisher.features.shape == (150, 4) and fisher.features.dtype == torch.float64
    assert fisher.class_names == ("setosa", "versicolor", "virginica")
    assert fisher.digest != uci.digest


def test_iris_is_scikit_learns_load_iris_read_without_importing_it():
    from sklearn.datasets import load_iris

    iris, ours = load_iris(), load_dataset("iris")
    assert torch.equal(ours.features, torch.tensor(iris.data, dtype=torch.float64))
    assert torch.equal(ours.labels, torch.tensor(iris.target))
    assert ours.class_names == tuple(iris.target_names) and ours.feature_names == tuple(
        iris.feature_names
    )


def test_centred_columns_have_zero_mean():
    centred = centre(load_dataset("iris").features)
    assert torch.allclose(centred.mean(dim=0), torch.zeros(4, dtype=torch.float64), atol=1e-12)


def test_split_is_the_recipe_permutation_and_disjoint():
    split = split_rows(150, split_seed=0)
    perm = torch.randperm(150, generator=torch.Generator().manual_seed(0))
    assert torch.equal(split.train, perm[:100]) and torch.equal(split.val, perm[100:])
    assert len(set(split.train.tolist()) | set(split.val.tolist())) == 150
    assert not torch.equal(split_rows(150, split_seed=1).train, split.train)


def test_split_rejects_too_few_rows():
    with pytest.raises(DataError, match="cannot be split"):
        split_rows(1)


def test_scaling_follows_the_lab_and_the_std_option():
    x = load_dataset("iris").features
    assert torch.allclose(scale(x, "var"), (x - x.mean(0)) / x.var(0))
    standardised = scale(x, "std")
    assert torch.allclose(standardised.std(0), torch.ones(4, dtype=torch.float64))


def test_factorisation_matrices_are_the_lab_matrix_and_centred_data():
    data = load_dataset("iris")
    matrices = factorisation_matrices(data)
    assert list(matrices) == ["lab1-3x3", "iris"]
    assert torch.equal(matrices["lab1-3x3"], LAB_MATRIX)
    assert torch.equal(matrices["iris"], centre(data.features))


def test_valid_csv_loads_with_string_labels(tmp_path):
    path = tmp_path / "flowers.csv"
    path.write_text("a,b,kind\n1,2,x\n3,4.5,y\n5,6,x\n")
    data = load_csv_dataset(path)
    assert data.name == "flowers"
    assert data.features.tolist() == [[1, 2], [3, 4.5], [5, 6]]
    assert data.labels.tolist() == [0, 1, 0] and data.class_names == ("x", "y")


def test_csv_label_column_can_be_named(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("kind,a\nx,1\ny,2\n")
    assert load_csv_dataset(path, "kind").features.tolist() == [[1.0], [2.0]]


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty"),
        ("a,b,label\n", "no data rows"),
        ("a,b,label\n1,x,p\n2,3,q\n", "must be numeric"),
        ("a,b,label\n1,nan,p\n2,3,q\n", "NaN, inf"),
        ("a,b,label\n1,inf,p\n2,3,q\n", "NaN, inf"),
        ("a,b,label\n1,,p\n2,3,q\n", "NaN, inf"),
        ("a,b,label\n1,2,p\n2,3,p\n", "one class"),
        ("label\np\nq\n", "at least one feature"),
    ],
)
def test_bad_csv_is_refused_with_a_reason(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        load_dataset(str(path))


def test_missing_csv_and_unknown_name_are_refused(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_dataset(str(tmp_path / "missing.csv"))
    with pytest.raises(InputError, match="unknown dataset 'irs'"):
        load_dataset("irs")
    with pytest.raises(DataError, match="no label column 'species'"):
        path = tmp_path / "ok.csv"
        path.write_text("a,label\n1,p\n2,q\n")
        load_dataset(str(path), "species")


@pytest.mark.parametrize("scaling", ["var", "std"])
def test_a_constant_feature_scales_to_zero_as_with_standard_scaler(scaling):
    from sklearn.preprocessing import StandardScaler

    x = torch.tensor([[1.0, 2.0, 7.0], [1.0, 3.0, 7.0], [1.0, 5.0, 7.0]], dtype=torch.float64)
    scaled = scale(x, scaling)
    assert scaled[:, [0, 2]].eq(0).all()
    if scaling == "std":  # StandardScaler's spread is the population sd; ours the sample's
        expected = StandardScaler().fit_transform(x.numpy()) * math.sqrt(2 / 3)
        assert np.allclose(scaled.numpy(), expected)


def test_a_spread_that_overflows_cannot_be_scaled():
    with pytest.raises(DataError, match="finite spread"):
        scale(torch.tensor([[1e200, 2.0], [-1e200, 3.0]], dtype=torch.float64))


def test_constant_columns_are_named(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("a,b,c,label\n1,2,5,x\n1,3,5,y\n1,1,5,x\n")
    assert constant_columns(load_dataset(str(path))) == ["a", "c"]


def test_a_class_with_one_row_is_refused_naming_it_and_the_counts():
    labels = torch.tensor([0, 0, 1, 1, 2, 0])
    with pytest.raises(
        DataError,
        match=r"class 'c' has 1 row; .*at least 2 rows.*\(rows per class: a: 3, b: 2, c: 1\)",
    ):
        check_split_classes(labels, split_rows(6, 0), ("a", "b", "c"), split_seed=0)


def test_a_split_without_a_class_in_training_is_refused_unless_the_report_protocol():
    labels = torch.tensor([0, 0, 1, 1, 1, 0])
    split = Split(train=torch.tensor([0, 1, 5, 2]), val=torch.tensor([3, 4]))
    check_split_classes(labels, split, ("a", "b"), split_seed=0)  # both classes train
    no_b = Split(train=torch.tensor([0, 1, 5]), val=torch.tensor([2, 3, 4]))
    with pytest.raises(
        DataError,
        match=(
            r"split seed 7 leaves class 'b' \(0 of its 3 rows\) out of the 3 training rows.*a: 3, "
            r"b: 3"
        ),
    ):
        check_split_classes(labels, no_b, ("a", "b"), split_seed=7)
    check_split_classes(labels, no_b, ("a", "b"), split_seed=7, need_all_in_training=False)


def test_every_iris_split_trains_on_all_three_species():
    iris = load_dataset("iris")
    for seed in range(20):
        check_split_classes(iris.labels, split_rows(150, seed), iris.class_names, seed)
