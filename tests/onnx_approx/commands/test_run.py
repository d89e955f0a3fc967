"""`onnx-approx run`: arguments reach the pipeline, the report path is printed, bad input is one line, exit 2."""

from pathlib import Path

import pytest

import onnx_approx.pipeline
from onnx_approx.cli import build_parser, main


@pytest.fixture
def fake_pipeline(monkeypatch):
    """run_recipe replaced by a recorder that returns a report path without running anything."""
    seen = {}

    def fake(recipe, *, out=None, threads=None, from_step=None):
        seen.update(recipe=recipe, out=out, threads=threads, from_step=from_step)
        return Path(out or recipe.out) / "report.md"

    monkeypatch.setattr(onnx_approx.pipeline, "run_recipe", fake)
    return seen


def test_options_reach_the_pipeline_and_the_report_path_is_printed(recipe_workspace, fake_pipeline, tmp_path, capsys):
    path = recipe_workspace("tiny")
    code = main(["run", str(path), "--out", str(tmp_path / "elsewhere"), "--threads", "1", "--from-step", "passes",
                 "--data-dir", str(tmp_path)])
    assert code == 0
    assert fake_pipeline["out"] == str(tmp_path / "elsewhere") and fake_pipeline["threads"] == 1
    assert fake_pipeline["from_step"] == "passes" and fake_pipeline["recipe"].data.data_dir == str(tmp_path)
    assert capsys.readouterr().out.strip() == f"report: {tmp_path / 'elsewhere' / 'report.md'}"


def test_a_bad_recipe_is_one_line_naming_file_and_field(tmp_path, fake_pipeline, capsys):
    path = tmp_path / "bad.toml"
    path.write_text('model = "minilm-l6"\ntask = "sst2"\ngoal = "faster"\n[recovery]\nepoch = 1\n')
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"onnx-approx run: error: {path}: recovery.epoch: unknown key" in err
    assert main(["run", str(tmp_path / "missing.toml")]) == 2
    assert "recipe not found" in capsys.readouterr().err
    assert not fake_pipeline


def test_an_unknown_step_is_refused_before_any_work(recipe_workspace, capsys):
    assert main(["run", str(recipe_workspace("tiny")), "--from-step", "deploy"]) == 2
    steps = "finetune, analyze, approximate, export, passes, baselines, evaluate, bench, profile"
    assert f"--from-step must be one of {steps}" in capsys.readouterr().err


def test_help_shows_examples():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["run"]
    text = sub.format_help()
    assert "onnx-approx run models/minilm-sst2-faster.toml" in text and "--from-step" in text
