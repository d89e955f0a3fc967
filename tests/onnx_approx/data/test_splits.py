"""Data folder resolution, seeded subsets and the stratified validation split carved from train."""

import collections
import os

import pytest

from onnx_approx.data import Example, QAExample, carve_validation, resolve_data_dir, subsample
from onnx_approx.data import splits


def _examples(labels):
    return [Example(f"text {i}", None, y, f"f:{i + 1}") for i, y in enumerate(labels)]


def test_explicit_argument_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("ONNX_APPROX_DATA", str(tmp_path / "other"))
    assert resolve_data_dir(tmp_path) == tmp_path


def test_env_var_then_cwd_then_repo(tmp_path, monkeypatch):
    monkeypatch.setenv("ONNX_APPROX_DATA", str(tmp_path))
    assert resolve_data_dir(None) == tmp_path
    monkeypatch.delenv("ONNX_APPROX_DATA")
    shared = tmp_path / "shared" / "data"
    shared.mkdir(parents=True)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    assert resolve_data_dir() == shared.resolve()
    repo = tmp_path / "elsewhere" / "repo"
    monkeypatch.chdir(tmp_path)  # ../shared/data from here does not exist
    monkeypatch.setattr(splits, "_REPO_ROOT", repo)
    (tmp_path / "elsewhere" / "shared" / "data").mkdir(parents=True)
    assert resolve_data_dir() == (tmp_path / "elsewhere" / "shared" / "data").resolve()


def test_missing_explicit_folders_are_errors(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match=r"from --data-dir"):
        resolve_data_dir(tmp_path / "missing")
    monkeypatch.setenv("ONNX_APPROX_DATA", str(tmp_path / "gone"))
    with pytest.raises(FileNotFoundError, match=r"gone \(from \$ONNX_APPROX_DATA\)"):
        resolve_data_dir()


def test_nothing_found_says_how_to_set_it(tmp_path, monkeypatch):
    monkeypatch.delenv("ONNX_APPROX_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(splits, "_REPO_ROOT", tmp_path / "a" / "b")
    with pytest.raises(FileNotFoundError) as err:
        resolve_data_dir()
    message = str(err.value)
    assert os.fspath(tmp_path / ".." / "shared" / "data") in message and "--data-dir" in message
    assert "ONNX_APPROX_DATA" in message


def test_carve_is_stratified_disjoint_and_seeded():
    labels = [0] * 300 + [1] * 600 + [2] * 100
    examples = _examples(labels)
    rest, val = carve_validation(examples, fraction=0.1, seed=5)
    assert len(val) == 100 and len(rest) == 900
    assert collections.Counter(e.label for e in val) == {0: 30, 1: 60, 2: 10}
    assert {e.source for e in rest}.isdisjoint(e.source for e in val)
    assert sorted(e.source for e in rest + val) == sorted(e.source for e in examples)
    assert [examples.index(e) for e in val] == sorted(examples.index(e) for e in val)
    assert carve_validation(examples, fraction=0.1, seed=5) == (rest, val)
    assert carve_validation(examples, fraction=0.1, seed=6)[1] != val


def test_carve_uneven_shares_within_one():
    labels = [0] * 37 + [1] * 61 + [2] * 5
    _, val = carve_validation(_examples(labels), fraction=0.17, seed=0)
    assert len(val) == round(0.17 * 103)
    counts = collections.Counter(e.label for e in val)
    for label, total in collections.Counter(labels).items():
        assert abs(counts[label] - 0.17 * total) < 1


def test_carve_max_samples_and_unstratified():
    examples = _examples([0, 1] * 50)
    _, val = carve_validation(examples, fraction=0.5, max_samples=8, seed=0)
    assert len(val) == 8
    _, val = carve_validation(examples, fraction=0.2, stratify=False, seed=0)
    assert len(val) == 20


def test_carve_regression_and_qa():
    reg = [Example("t", None, float(i), f"f:{i}") for i in range(20)]
    rest, val = carve_validation(reg, fraction=0.25, seed=0)
    assert len(val) == 5 and len(rest) == 15
    qa = [QAExample(str(i), "q", "c", ["c"], [0]) for i in range(10)]
    assert len(carve_validation(qa, fraction=0.3)[1]) == 3


@pytest.mark.parametrize("kwargs,needle", [
    (dict(fraction=0.0), "between 0 and 1"), (dict(fraction=1.0), "between 0 and 1"),
    (dict(fraction=0.5, max_samples=0), "at least 1"),
])
def test_carve_bad_arguments(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        carve_validation(_examples([0, 1] * 5), **kwargs)


def test_carve_too_few_examples():
    with pytest.raises(ValueError, match="nothing would be left"):
        carve_validation(_examples([0]), fraction=0.5)


def test_subsample():
    examples = _examples([0, 1] * 10)
    assert subsample(examples, None) == examples and subsample(examples, 50) == examples
    part = subsample(examples, 5, seed=1)
    assert len(part) == 5 and part == subsample(examples, 5, seed=1)
    with pytest.raises(ValueError, match="at least 1"):
        subsample(examples, 0)
