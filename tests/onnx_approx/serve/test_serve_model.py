import json
import logging

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from onnx_approx.plan import Plan
from onnx_approx.serve.model import ServedModel, length_groups

TEXTS = ["the movie was good", "bad", "a very long and really quite boring story of one actor in paris", "fun"]
PAIRS = [("who is it", "paris is the capital of france"), ("what", "a river")]


def one_run(served, items):
    """Logits of all items in one run, padded to the longest."""
    return served.session.run(["logits"], served.pad(served.tokenize(items)))[0]


def torch_reference(hf_dir, items):
    """PyTorch logits, one item at a time (no padding at all): an independent realization of the served model."""
    model = AutoModelForSequenceClassification.from_pretrained(hf_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    rows = []
    with torch.no_grad():
        for item in items:
            enc = tokenizer(*((item,) if isinstance(item, str) else item), return_tensors="pt")
            rows.append(model(**enc).logits[0])
    return torch.stack(rows)


class TestPredictions:
    def test_texts_and_pairs_match_pytorch(self, exported_model):
        hf_dir, out = exported_model("bert")
        served = ServedModel(out)
        items = [*TEXTS, *PAIRS]  # one mixed batch: single texts and pairs padded together
        predictions = served.predict(items)
        probs = torch.softmax(torch_reference(hf_dir, items), dim=-1).numpy()
        labels = AutoModelForSequenceClassification.from_pretrained(hf_dir).config.id2label
        assert len(predictions) == len(items)
        for pred, row in zip(predictions, probs):
            assert pred["label"] == labels[int(row.argmax())]
            np.testing.assert_allclose([pred["scores"][labels[i]] for i in range(len(row))], row, atol=1e-5)
            assert pred["score"] == pytest.approx(float(row.max()), abs=1e-5)

    def test_batch_padding_and_length_grouping_do_not_change_results(self, exported_model):
        _, out = exported_model("bert")
        served = ServedModel(out)
        together = one_run(served, TEXTS)
        alone = np.concatenate([one_run(served, [t]) for t in TEXTS])
        np.testing.assert_allclose(together, alone, atol=1e-5)
        grouped = [list(p["scores"].values()) for p in served.predict(TEXTS)]
        expected = [list(p["scores"].values()) for p in served.to_predictions(alone)]
        np.testing.assert_allclose(grouped, expected, atol=1e-6)

    def test_regression_returns_the_value(self, exported_model):
        hf_dir, out = exported_model("bert", num_labels=1)
        served = ServedModel(out)
        predictions = served.predict(TEXTS)
        expected = torch_reference(hf_dir, TEXTS)[:, 0].numpy()
        assert [set(p) for p in predictions] == [{"value"}] * len(TEXTS)
        np.testing.assert_allclose([p["value"] for p in predictions], expected, atol=1e-5)

    def test_model_without_token_type_ids(self, exported_model):
        hf_dir, out = exported_model("distilbert")
        served = ServedModel(out)
        assert served.input_names == ["input_ids", "attention_mask"]
        probs = torch.softmax(torch_reference(hf_dir, TEXTS), dim=-1).numpy()
        got = [list(p["scores"].values()) for p in served.predict(TEXTS)]
        np.testing.assert_allclose(got, probs, atol=1e-5)

    def test_texts_longer_than_the_model_are_truncated(self, exported_model):
        _, out = exported_model("bert")
        served = ServedModel(out)
        feeds = served.pad(served.tokenize(["good " * 500]))
        assert feeds["input_ids"].shape == (1, served.max_length)
        assert served.predict(["good " * 500])[0]["label"] in served.labels


class TestLengthGroups:
    @pytest.mark.parametrize("seed", range(5))
    def test_every_item_once_and_padding_bounded(self, seed):
        rng = np.random.default_rng(seed)
        lengths = rng.integers(3, 128, size=40).tolist()
        groups = length_groups(lengths, max_padding=0.25)
        assert sorted(i for g in groups for i in g) == list(range(40))
        for g in groups:
            real = sum(lengths[i] for i in g)
            assert len(g) * max(lengths[i] for i in g) <= 1.25 * real

    def test_equal_lengths_make_one_group_and_outliers_their_own(self):
        assert length_groups([10] * 8) == [list(range(8))]
        assert length_groups([10, 100, 10, 10]) == [[0, 2, 3], [1]]
        assert length_groups([]) == []


class TestMetadata:
    def test_describes_model_plan_and_versions(self, exported_model, tmp_path):
        _, out = exported_model("bert")
        folder = tmp_path / "with-plan"
        folder.mkdir()
        for f in out.iterdir():
            (folder / f.name).write_bytes(f.read_bytes())
        plan = Plan.identity("bert", {"num_layers": 2, "num_heads": 4, "head_dim": 8, "intermediate_size": 48})
        plan.layers[0].attention.heads_kept = [0, 2]
        plan.layers[1].ffn.remove = True
        plan.layers[1].attention.sign_match_top_k = 8
        plan.layers[0].precision = {"ffn.intermediate": "int8", "ffn.output": "int4"}
        plan.save(folder / "plan.json")
        (folder / "metrics.json").write_text(json.dumps({"task": "SST-2", "accuracy": 0.9}))

        meta = ServedModel(folder).metadata()
        assert meta["task"] == "SST-2"
        assert meta["metrics"]["accuracy"] == 0.9
        assert meta["model"]["labels"] == ["LABEL_0", "LABEL_1"]
        assert meta["model"]["inputs"] == ["input_ids", "attention_mask", "token_type_ids"]
        assert meta["runtime"]["providers"] == ["CPUExecutionProvider"]
        assert meta["versions"]["onnxruntime"] == ort.__version__
        summary = meta["plan"]
        assert summary["heads_kept"] == 2 + 4 and summary["heads_total"] == 8
        assert summary["ffn_blocks_removed"] == 1
        assert summary["neurons_kept"] == 48 and summary["neurons_total"] == 96
        assert summary["sign_match_layers"] == [1]
        assert summary["matrix_precision"] == {"fp32": 10, "int8": 1, "int4": 1}
        json.dumps(meta)  # JSON-ready as a whole

    def test_without_plan_or_metrics(self, exported_model):
        _, out = exported_model("bert", num_labels=1)
        meta = ServedModel(out).metadata()
        assert meta["plan"] is None and meta["metrics"] is None
        assert meta["task"] == "regression" and meta["model"]["regression"] is True


class TestBadFolders:
    def test_missing_model(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="model.onnx"):
            ServedModel(tmp_path)

    def test_model_without_logits_output(self, exported_model, tmp_path):
        _, out = exported_model("bert")
        folder = tmp_path / "renamed"
        folder.mkdir()
        for f in out.iterdir():
            (folder / f.name).write_bytes(f.read_bytes())
        model = onnx.load(str(folder / "model.onnx"))
        old = model.graph.output[0].name
        for node in model.graph.node:
            node.output[:] = ["scores" if o == old else o for o in node.output]
        model.graph.output[0].name = "scores"
        onnx.save(model, str(folder / "model.onnx"))
        with pytest.raises(ValueError, match="output 'logits'"):
            ServedModel(folder)


class TestDevice:
    def test_cuda_missing_falls_back_to_cpu_with_a_message(self, exported_model, monkeypatch, caplog):
        _, out = exported_model("bert")
        monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
        with caplog.at_level(logging.WARNING):
            served = ServedModel(out, device="cuda")
        assert served.session.get_providers() == ["CPUExecutionProvider"]
        assert any("CUDAExecutionProvider" in r.getMessage() and "CPU" in r.getMessage() for r in caplog.records)
        assert served.metadata()["runtime"]["device"] == "cuda"
        assert served.predict(["good"])[0]["label"] in served.labels

    def test_cuda_available_is_asked_for_first(self, exported_model, monkeypatch):
        _, out = exported_model("bert")
        asked = {}
        real_session = ort.InferenceSession

        def recording_session(path, sess_options=None, providers=None, **kw):
            asked["providers"] = providers
            return real_session(path, sess_options=sess_options, providers=["CPUExecutionProvider"], **kw)

        monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
        monkeypatch.setattr(ort, "InferenceSession", recording_session)
        ServedModel(out, device="cuda")
        assert asked["providers"] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
