"""`analyze` and `approximate` end to end on a tiny model and a few dozen synthetic sentences (a TSV table task)."""

import copy
import json

import numpy as np
import pytest
import torch

from onnx_approx.approximate import apply_plan_torch
from onnx_approx.cli import main
from onnx_approx.data import carve_validation, load_table
from onnx_approx.modeling import load_model
from onnx_approx.plan import Plan

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture
def workspace(lively_model, synthetic_sentences, tmp_path):
    """A tiny lively BERT and train/dev TSVs labelled by the model itself (so every change shows)."""
    model, tokenizer, folder = lively_model("bert")
    files = {}
    for split, n, seed in (("train", 60, 0), ("dev", 24, 1)):
        texts = [t for t, _ in synthetic_sentences(n, seed)]
        with torch.no_grad():
            batch = tokenizer(texts, padding=True, return_tensors="pt")
            labels = model(**batch).logits.argmax(-1).tolist()
        files[split] = tmp_path / f"{split}.tsv"
        files[split].write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in zip(texts, labels)))
    data_args = ["--task", "table", "--train-file", str(files["train"]), "--dev-file", str(files["dev"]),
                 "--val-fraction", "0.4"]
    return model, folder, files, data_args


def validation_losses(model, folder, files) -> np.ndarray:
    """Per-example loss on the validation split the commands carve (same seed), one example at a time."""
    task, train = load_table(files["train"], "sentence")
    _, val = carve_validation(train, fraction=0.4, max_samples=2000, seed=0)
    tokenizer = load_model(folder).tokenizer
    with torch.no_grad():
        return np.asarray([model(**tokenizer(ex.text_a, return_tensors="pt"), labels=torch.tensor([ex.label])).loss.item()
                           for ex in val])


def test_analyze_writes_measured_significance(workspace, tmp_path):
    model, folder, files, data_args = workspace
    out = tmp_path / "analysis"
    assert main(["analyze", "--model", str(folder), *data_args, "--out", str(out)]) == 0
    doc = json.loads((out / "significance.json").read_text())
    assert len(doc["components"]) == 2 * (1 + 4 + 1 + 12) and len(doc["matrices"]) == 2 * 6
    baseline = validation_losses(model, folder, files)
    assert doc["baseline"]["loss"] == pytest.approx(baseline.mean(), abs=1e-5)
    measured = [r for r in doc["components"] if r["loss_change"] is not None]
    assert len(measured) == 2 * (1 + 2 + 1 + 6)  # blocks, and the least significant half of heads and groups
    row = next(r for r in measured if r["kind"] == "head" and r["layer"] == 0)
    plan = Plan.identity("bert", {"num_layers": 2, "num_heads": 4, "head_dim": 8, "intermediate_size": 48})
    plan.layers[0].attention.heads_kept = [h for h in range(4) if h != row["index"]]
    without_head = validation_losses(apply_plan_torch(copy.deepcopy(model), plan), folder, files)
    assert row["loss_change"] == pytest.approx(without_head.mean() - baseline.mean(), abs=1e-5)
    assert row["no_worse_fraction"] == pytest.approx(np.mean(without_head <= baseline))
    assert (out / "heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert row["name"] in (out / "summary.md").read_text()


def test_approximate_then_evaluate_with_the_plan(workspace, tmp_path, capsys):
    _, folder, files, data_args = workspace
    out = tmp_path / "fast"
    args = ["approximate", "--model", str(folder), *data_args, "--goal", "faster", "--max-rel-drop", "0.1",
            "--patience", "3", "--recover-epochs", "1", "--recover-batch-size", "8", "--out", str(out)]
    assert main(args) == 0
    plan = Plan.load(out / "plan.json")
    assert not plan.is_identity() and plan.goal == "faster"
    recovered_dev = plan.metrics["approximated"]["dev"]["accuracy"]
    report = (out / "report.md").read_text()
    assert "encoder MACs per token at sequence 128" in report and "## What changed where" in report

    # model/ + plan.json, evaluated by `evaluate --plan`, reproduces the recovered model's dev accuracy.
    capsys.readouterr()
    assert main(["evaluate", "--model", str(out / "model"), "--plan", str(out / "model" / "plan.json"),
                 *data_args[:6]]) == 0
    row = capsys.readouterr().out.splitlines()[-1].split()
    assert float(row[1]) == pytest.approx(recovered_dev, abs=5e-5)  # printed with 4 decimals

    # A finished folder is not overwritten by accident; the error is one line, exit code 2.
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_approximate_refuses_an_analysis_of_another_model(workspace, lively_model, tmp_path, capsys):
    _, folder, _, data_args = workspace
    _, _, other = lively_model("distilbert")
    assert main(["analyze", "--model", str(other), *data_args, "--out", str(tmp_path / "an")]) == 0
    capsys.readouterr()
    code = main(["approximate", "--model", str(folder), *data_args, "--goal", "accurate", "--recover-epochs", "0",
                 "--analysis", str(tmp_path / "an"), "--out", str(tmp_path / "acc")])
    assert code == 2
    assert "analysis of a distilbert model" in capsys.readouterr().err


def test_rounds_resume_after_a_kill_without_retraining(workspace, tmp_path, monkeypatch):
    import onnx_approx.recovery
    from onnx_approx.search import Search

    _, folder, _, data_args = workspace
    out = tmp_path / "rounds"
    args = ["approximate", "--model", str(folder), *data_args, "--goal", "faster", "--max-rel-drop", "0.1",
            "--patience", "2", "--rounds", "2", "--recover-epochs", "1", "--recover-batch-size", "8", "--out", str(out)]
    trainings = []
    real_train = onnx_approx.recovery.train
    monkeypatch.setattr(onnx_approx.recovery, "train", lambda *a, **k: trainings.append(1) or real_train(*a, **k))
    real_checkpoint = Search._checkpoint

    def die_in_round_two(self):
        real_checkpoint(self)
        if self.state.settings["round"] == 2 and self.state.trials:
            raise KeyboardInterrupt

    monkeypatch.setattr(Search, "_checkpoint", die_in_round_two)
    assert main(args) == 130
    assert len(trainings) == 1 and (out / "rounds" / "1" / "config.json").is_file()
    monkeypatch.setattr(Search, "_checkpoint", real_checkpoint)
    assert main(args) == 0
    assert len(trainings) == 2  # round 1's recovered model was reloaded, not trained again
    assert not (out / "rounds").exists()
    report = (out / "report.md").read_text()
    assert "over 2 rounds of search and recovery" in report and "| round 2 recovered | dev |" in report
    assert "from fine-tuned in" in report and "from round 1's recovered model in" in report


def test_smaller_keeps_the_training_vocabulary_and_reports_it(workspace, tmp_path):
    from onnx_approx.vocabulary import task_vocabulary, unknown_fraction

    _, folder, files, data_args = workspace
    args = ["approximate", "--model", str(folder), *data_args, "--goal", "smaller", "--max-rel-drop", "0",
            "--patience", "1", "--recover-epochs", "0"]
    assert main([*args, "--prune-vocab", "--out", str(tmp_path / "small")]) == 0
    plan = Plan.load(tmp_path / "small" / "plan.json")
    tokenizer = load_model(folder).tokenizer
    train, dev = (load_table(files[split], "sentence")[1] for split in ("train", "dev"))
    assert plan.vocab_kept == task_vocabulary(tokenizer, train)
    unknown = unknown_fraction(tokenizer, dev, plan.vocab_kept)
    assert f"| vocabulary (training examples' tokens; {unknown:.2%} of dev tokens read as [UNK]) | 128 |" \
        in (tmp_path / "small" / "report.md").read_text()
    assert main([*args, "--out", str(tmp_path / "all")]) == 0
    assert Plan.load(tmp_path / "all" / "plan.json").vocab_kept is None


def test_smaller_reports_the_table_bytes_and_precisions(workspace, tmp_path):
    model, folder, _, data_args = workspace
    out = tmp_path / "small"
    assert main(["approximate", "--model", str(folder), *data_args, "--goal", "smaller", "--max-rel-drop", "0.9",
                 "--patience", "1", "--recover-epochs", "0", "--out", str(out)]) == 0
    plan = Plan.load(out / "plan.json")
    quantized = {t: plan.table_precision(t) for t in ("word", "position", "head") if plan.table_precision(t) != "fp32"}
    assert quantized  # this budget lets the search quantize them
    hidden, vocab, positions = model.config.hidden_size, model.config.vocab_size, model.config.max_position_embeddings
    fp32 = 4 * hidden * (vocab + positions + hidden)
    report = (out / "report.md").read_text()
    assert f"| embedding tables + head projection bytes (with precision) | {fp32:,} |" in report
    names = {"word": "word embeddings", "position": "position embeddings", "head": "head projection"}
    assert "Outside the encoder: " + ", ".join(f"{names[t]} {p}" for t, p in quantized.items()) + "." in report


def test_a_given_plan_is_recovered_without_a_search(workspace, tmp_path, monkeypatch, capsys):
    import onnx_approx.approximation
    from onnx_approx.data import subsample
    from onnx_approx.evaluate import TorchEngine, evaluate_engine

    model, folder, files, data_args = workspace
    monkeypatch.setattr(onnx_approx.approximation, "Search", None)  # any search would fail
    plan = Plan.identity("bert", {"num_layers": 2, "num_heads": 4, "head_dim": 8, "intermediate_size": 48})
    plan.layers[0].attention.heads_kept = [0, 2, 3]
    plan.layers[1].attention.sign_match_top_k = 3
    plan.save(tmp_path / "given.json")
    out = tmp_path / "given"
    args = ["approximate", "--model", str(folder), *data_args, "--plan", str(tmp_path / "given.json"),
            "--max-dev-samples", "10", "--recover-epochs", "1", "--recover-batch-size", "8", "--out", str(out)]
    assert main(args) == 0
    written = Plan.load(out / "plan.json")
    assert written.layers[0].attention.heads_kept == [0, 2, 3] and written.layers[1].attention.sign_match_top_k == 3
    assert "No goal (plan given, no search)." in (out / "report.md").read_text()

    # Before recovery, dev is the given plan on the fine-tuned model over the seeded subset finetune scores.
    task, dev = load_table(files["dev"], "sentence")
    expected = evaluate_engine(TorchEngine(apply_plan_torch(copy.deepcopy(model), plan), True),
                               load_model(folder).tokenizer, task, subsample(dev, 10, seed=42), max_seq_len=128)
    assert written.metrics["approximated"]["dev_before_recovery"] == pytest.approx(expected.metrics)
    assert (out / "model" / "plan.json").is_file()


@pytest.mark.parametrize("extra, message", [
    ([], "give --goal (search a plan) or --plan"),
    (["--goal", "faster", "--plan", "PLAN"], "not both"),
    (["--plan", "PLAN"], "num_layers"),
])
def test_goal_or_plan_errors(workspace, tmp_path, capsys, extra, message):
    _, folder, _, data_args = workspace
    other = Plan.identity("bert", {"num_layers": 3, "num_heads": 4, "head_dim": 8, "intermediate_size": 48})
    other.save(tmp_path / "other.json")
    extra = [str(tmp_path / "other.json") if a == "PLAN" else a for a in extra]
    assert main(["approximate", "--model", str(folder), *data_args, *extra, "--out", str(tmp_path / "x")]) == 2
    assert message in capsys.readouterr().err
