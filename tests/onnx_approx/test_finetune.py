"""Fine-tuning, evaluation and the CLI's bad-input handling on a tiny model and small tables."""

import json

import numpy as np
import pytest
import torch

from onnx_approx.cli import main
from onnx_approx.evaluate import OrtEngine, TorchEngine, evaluate_engine
from onnx_approx.export import export_folder
from onnx_approx.finetune import finetune
from onnx_approx.modeling import load_model
from onnx_approx.runtime import make_session
from onnx_approx.task_data import TaskData
from onnx_approx.train_config import TrainConfig

POSITIVE = ["good movie", "great fun film", "loved it", "fine story and great actor", "really good"]
NEGATIVE = ["bad movie", "awful plot", "hated it", "boring story", "really bad film"]


def _write_table(path, rows):
    path.write_text("sentence,label\n" + "".join(f"{text},{label}\n" for text, label in rows))
    return path


@pytest.fixture
def sentiment_tables(tmp_path):
    train = [(t, "pos") for t in POSITIVE] * 6 + [(t, "neg") for t in NEGATIVE] * 6
    dev = [(t, "pos") for t in POSITIVE] + [(t, "neg") for t in NEGATIVE]
    return {"train": _write_table(tmp_path / "train.csv", train), "dev": _write_table(tmp_path / "dev.csv", dev)}


class TestFinetune:
    def test_learns_a_separable_table_and_is_deterministic(self, tiny_model_dir, sentiment_tables, tmp_path):
        data = TaskData.table(sentiment_tables, "sentence")
        assert data.task.label_names == ("neg", "pos")
        config = TrainConfig(epochs=8, lr=3e-3, batch_size=8, seed=3, warmup_ratio=0.0)
        model = tiny_model_dir("bert")
        first = finetune(str(model), data, tmp_path / "a", config)
        second = finetune(str(model), data, tmp_path / "b", config)
        assert first["dev"]["accuracy"] == 1.0
        assert first["train"]["train_loss"] == second["train"]["train_loss"]
        saved = json.loads((tmp_path / "a" / "metrics.json").read_text())
        assert saved["dev"] == first["dev"] and saved["main_metric"] == "accuracy"
        assert (tmp_path / "a" / "model.safetensors").is_file() and (tmp_path / "a" / "tokenizer.json").is_file()

    def test_a_new_task_head_is_seeded(self, tiny_model_dir, sentiment_tables, tmp_path):
        """A pre-trained model without the task's head (as MiniLM) gets the same new head in every run, whatever
        the global RNG did before: fine-tuning with one seed gives one model."""
        from transformers import AutoModel

        base = tmp_path / "base"
        AutoModel.from_pretrained(tiny_model_dir("bert")).save_pretrained(base)
        for name in ("tokenizer.json", "tokenizer_config.json"):
            (base / name).write_bytes((tiny_model_dir("bert") / name).read_bytes())
        data = TaskData.table(sentiment_tables, "sentence")
        config = TrainConfig(epochs=1, batch_size=8, seed=3)
        first = finetune(str(base), data, tmp_path / "a", config)
        torch.rand(7)  # the global RNG moves on between runs (another process starts elsewhere)
        second = finetune(str(base), data, tmp_path / "b", config)
        assert first["train"]["train_loss"] == second["train"]["train_loss"]
        heads = [load_model(str(tmp_path / d), data.task).model.classifier.weight for d in ("a", "b")]
        assert torch.equal(*heads)

    def test_hold_out_validation_trains_without_the_analysis_split(self, tiny_model_dir, sentiment_tables, tmp_path):
        """--hold-out-validation leaves out exactly the split analyze/approximate carve with the same settings."""
        args = ["finetune", "--model", str(tiny_model_dir("bert")), "--task", "table", "--train-file",
                str(sentiment_tables["train"]), "--dev-file", str(sentiment_tables["dev"]), "--epochs", "1"]
        held_out = ["--hold-out-validation", "--val-fraction", "0.25", "--val-seed", "3"]
        assert main([*args, *held_out, "--out", str(tmp_path / "held")]) == 0
        train = json.loads((tmp_path / "held" / "metrics.json").read_text())["train"]
        assert train["samples"] == 60 - 15
        assert train["held_out"] == "15 examples carved from csv train (fraction 0.25, seed 3)"
        assert main([*args, "--out", str(tmp_path / "all")]) == 0
        train = json.loads((tmp_path / "all" / "metrics.json").read_text())["train"]
        assert train["samples"] == 60 and train["held_out"] is None

    def test_max_dev_samples_scores_a_seeded_subset_of_dev(self, tiny_model_dir, sentiment_tables, tmp_path):
        """The subset's metric equals an independent evaluation of the saved model on the same subset."""
        data = TaskData.table(sentiment_tables, "sentence")
        config = TrainConfig(epochs=1, batch_size=8, seed=5, max_dev_samples=4)
        metrics = finetune(str(tiny_model_dir("bert")), data, tmp_path / "m", config)
        assert metrics["dev_samples"] == 4
        subset = data.load("dev", max_samples=4, seed=5)
        assert len(subset) == 4 and len(data.load("dev")) == 10
        loaded = load_model(str(tmp_path / "m"), data.task)
        again = evaluate_engine(TorchEngine(loaded.model, loaded.uses_token_type_ids), loaded.tokenizer, data.task,
                                subset, max_seq_len=config.max_seq_len)
        assert again.metrics == metrics["dev"]


class TestEvaluateParity:
    @pytest.mark.parametrize("model_type", ["bert", "roberta"])
    def test_pytorch_and_onnx_agree(self, tiny_model_dir, sentiment_tables, tmp_path, model_type):
        data = TaskData.table(sentiment_tables, "sentence")
        folder = tiny_model_dir(model_type)
        export_folder(folder, tmp_path / "onnx")
        loaded = load_model(folder, data.task)
        examples = data.load("dev")
        torch_result = evaluate_engine(TorchEngine(loaded.model, loaded.uses_token_type_ids), loaded.tokenizer, data.task, examples)
        ort_result = evaluate_engine(OrtEngine(make_session(tmp_path / "onnx" / "model.onnx")), loaded.tokenizer, data.task, examples)
        np.testing.assert_allclose(torch_result.outputs["logits"], ort_result.outputs["logits"], atol=1e-5)
        assert torch_result.metrics == ort_result.metrics
        # Outputs come back in example order, whatever the length-sorted batching did.
        single = TorchEngine(loaded.model, loaded.uses_token_type_ids)
        one = evaluate_engine(single, loaded.tokenizer, data.task, examples[3:4])
        np.testing.assert_allclose(one.outputs["logits"][0], torch_result.outputs["logits"][3], atol=1e-5)


class TestCLIBadInput:
    def _run(self, capsys, *argv):
        code = main(list(argv))
        return code, capsys.readouterr().err

    def test_unknown_task(self, capsys, tmp_path):
        code, err = self._run(capsys, "finetune", "--task", "nope", "--out", str(tmp_path / "o"))
        assert code == 2 and "unknown task 'nope'" in err.lower() and not (tmp_path / "o").exists()

    def test_unknown_alias(self, capsys, tmp_path, shared_data):
        code, err = self._run(capsys, "finetune", "--model", "no-such-alias", "--task", "sst2", "--out", str(tmp_path / "o"))
        assert code == 2 and "no-such-alias" in err and not (tmp_path / "o").exists()

    def test_missing_data_folder(self, capsys, tmp_path):
        code, err = self._run(capsys, "finetune", "--task", "sst2", "--data-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"))
        assert code == 2 and "nowhere" in err and not (tmp_path / "o").exists()

    def test_missing_column(self, capsys, tmp_path, sentiment_tables):
        code, err = self._run(capsys, "finetune", "--task", "table", "--train-file", str(sentiment_tables["train"]),
                              "--text-column", "review", "--out", str(tmp_path / "o"))
        assert code == 2 and "missing column 'review'" in err and "train.csv" in err

    def test_empty_file(self, capsys, tmp_path):
        empty = tmp_path / "empty.csv"
        empty.write_text("")
        code, err = self._run(capsys, "finetune", "--task", "table", "--train-file", str(empty), "--out", str(tmp_path / "o"))
        assert code == 2 and "empty" in err and "empty.csv" in err

    def test_bad_label_names_file_and_line(self, capsys, tmp_path, sentiment_tables):
        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"sentence": "good", "label": 1}\n{"sentence": "bad", "label": 0.5}\n')
        code, err = self._run(capsys, "finetune", "--task", "table", "--train-file", str(bad), "--out", str(tmp_path / "o"))
        assert code == 2 and "bad.jsonl:2" in err

    def test_existing_output_is_refused_before_training(self, capsys, tmp_path, tiny_model_dir, sentiment_tables):
        out = tmp_path / "o"
        out.mkdir()
        (out / "keep.txt").write_text("mine")
        code, err = self._run(capsys, "finetune", "--model", str(tiny_model_dir("bert")), "--task", "table",
                              "--train-file", str(sentiment_tables["train"]), "--dev-file", str(sentiment_tables["dev"]),
                              "--out", str(out))
        assert code == 2 and "--overwrite" in err
        assert [p.name for p in out.iterdir()] == ["keep.txt"]
